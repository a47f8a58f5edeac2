"""The ``results.csv`` format: UTF-8, header = columns in order, ISO 8601 UTC timestamps, ``true``/``false``,
and formula neutralisation (a cell a spreadsheet would run gets a leading ``'``).

One function formats every cell, :func:`format_cells`, from cells already of their column's kind. :func:`write_csv`
streams a run's columns to a file with the :mod:`csv` module (the dialect ``DataFrame.to_csv`` used: minimal
quoting, ``\n`` line ends), a row at a time, from the plain columns (no pandas) or, for rows that are not plain,
from the typed frame pandas made of them; :func:`csv_column` formats a column of any typed frame the same way.
pandas is also imported to read a CSV back.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Final

from hardnir.schema import COLUMNS
from hardnir.store.columns import RunColumns

if TYPE_CHECKING:
    import pandas as pd

#: Leading characters that make a spreadsheet treat a cell as a formula (OWASP CSV injection list plus the
#: full-width forms some locales also evaluate).
FORMULA_CHARS: Final[str] = "=+-@\t\r\uff1d\uff0b\uff0d\uff20"
_NEEDS_QUOTE_RE: Final = re.compile(f"^'*[{re.escape(FORMULA_CHARS)}]")
_QUOTED_RE: Final = re.compile(f"^'+[{re.escape(FORMULA_CHARS)}]")


def neutralise_formula(text: str) -> str:
    """Prefix ``'`` to a cell a spreadsheet would run as a formula.

    A cell is prefixed when, after any leading quotes, it starts with ``= + - @``, tab, CR (or their
    full-width forms). Counting leading quotes makes the transformation reversible: ``'=x`` is written
    ``''=x`` and read back as ``'=x``; see :func:`restore_formula`.
    """
    return "'" + text if _NEEDS_QUOTE_RE.match(text) else text


def restore_formula(text: str) -> str:
    """Undo :func:`neutralise_formula`: drop one ``'`` only where quotes precede a formula character."""
    return text[1:] if _QUOTED_RE.match(text) else text


def _stamp(value: object) -> str:
    """A timestamp as ``%Y-%m-%dT%H:%M:%S.%fZ`` in UTC with a four-digit year (naive means UTC; finer than
    microseconds is cut, as ``strftime`` cuts it)."""
    assert isinstance(value, datetime)
    if value.utcoffset() is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return datetime.isoformat(value, timespec="microseconds") + "Z"


def format_cells(kind: str, values: Iterable[object]) -> Iterator[str]:
    """The CSV text of the cells of a column of ``kind`` (a kind of :data:`hardnir.schema.COLUMN_KINDS`, or
    ``number`` for an extra column pandas typed as a number), each already of its kind's type: None is missing."""
    for value in values:
        if value is None:
            yield ""
        elif kind == "bool":
            yield "true" if value else "false"
        elif kind == "timestamp":
            yield _stamp(value)
        elif kind == "float":
            yield repr(float(value))  # type: ignore[arg-type]
        elif kind == "number":
            yield str(value)
        else:
            yield neutralise_formula(str(value))


def _kind_of(series: pd.Series) -> str:
    """The :func:`format_cells` kind of a typed column, from its dtype."""
    import pandas as pd

    if str(series.dtype).startswith("datetime64"):
        return "timestamp"
    if series.dtype == bool or isinstance(series.dtype, pd.BooleanDtype):
        return "bool"
    if isinstance(series.dtype, pd.StringDtype | pd.CategoricalDtype) or series.dtype == object:
        return "text"
    return "number"


def _cells_of(series: pd.Series) -> list[object]:
    """The cells of a typed column as Python values, None where missing."""
    return [None if missing else value for value, missing in zip(series.astype(object), series.isna(), strict=True)]


def csv_column(series: pd.Series) -> pd.Series:
    """Text form of one typed column for the CSV export (:func:`format_cells` of its cells)."""
    import pandas as pd

    text = list(format_cells(_kind_of(series), _cells_of(series)))
    return pd.Series(text, index=series.index, name=series.name, dtype=object)


def write_csv(handle: IO[bytes], columns: RunColumns, frame: pd.DataFrame | None = None) -> None:
    """Stream the CSV export to ``handle``, a row at a time, every cell through :func:`format_cells`: the plain
    ``columns`` as they are; when they are not plain, ``frame`` is their typed form (what pandas made of them) and
    gives the cells and their kinds."""
    if frame is not None:
        cells = [format_cells(_kind_of(frame[name]), _cells_of(frame[name])) for name in columns.names]
    else:
        cells = [format_cells(columns.kinds[name], columns.values[name]) for name in columns.names]
    text = io.TextIOWrapper(handle, encoding="utf-8", newline="", write_through=False)
    try:
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow(columns.names)
        writer.writerows(zip(*cells, strict=True))
        text.flush()
    finally:
        text.detach()


def read_csv(path: Path) -> pd.DataFrame:
    """Read a ``results.csv`` back into raw columns, undoing formula neutralisation on text columns."""
    import pandas as pd

    raw = pd.read_csv(path, dtype=object, keep_default_na=False, na_filter=False, encoding="utf-8")
    missing = [col for col in COLUMNS if col not in raw.columns]
    if missing:
        raise ValueError(f"missing columns {', '.join(missing)}")
    typed = {"started_at", "changed", "duration_s"}
    for col in raw.columns:
        if col not in typed:
            raw[col] = raw[col].map(restore_formula)
    raw["changed"] = raw["changed"].map({"true": True, "false": False})
    if raw["changed"].isna().any():
        raise ValueError("column 'changed' holds values other than true/false")
    raw["duration_s"] = pd.to_numeric(raw["duration_s"])
    return raw
