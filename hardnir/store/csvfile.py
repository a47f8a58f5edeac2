"""The ``results.csv`` format: UTF-8, header = columns in order, ISO 8601 UTC timestamps, ``true``/``false``,
and formula neutralisation (a cell a spreadsheet would run gets a leading ``'``).

:func:`write_csv` streams a run's columns to a file with the :mod:`csv` module (the dialect ``DataFrame.to_csv``
used: minimal quoting, ``\n`` line ends), a row at a time; pandas is imported only for columns that are not plain
(:attr:`hardnir.store.columns.RunColumns.plain`) and to read a CSV back.
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


def _is_text(series: pd.Series) -> bool:
    """Whether a column holds text (string, categorical or object)."""
    import pandas as pd

    return isinstance(series.dtype, pd.StringDtype | pd.CategoricalDtype) or series.dtype == object


def csv_column(series: pd.Series) -> pd.Series:
    """Text form of one column for the CSV export (timestamps ISO UTC, booleans true/false, formulas neutralised)."""
    import pandas as pd

    if str(series.dtype).startswith("datetime64"):
        stamps: pd.Series = series.dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ").astype(object)
        return stamps.where(series.notna(), "")
    if series.dtype == bool or isinstance(series.dtype, pd.BooleanDtype):
        return series.map({True: "true", False: "false"}).astype(object).where(series.notna(), "")
    if _is_text(series):
        text = series.astype(object).where(series.notna(), "")
        return text.map(lambda v: neutralise_formula(str(v)))
    return series.astype(object).where(series.notna(), "")


def _stamp(value: object) -> str:
    """A UTC timestamp as ``%Y-%m-%dT%H:%M:%S.%fZ`` with a four-digit year (as pandas writes it)."""
    assert isinstance(value, datetime)
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def plain_cells(kind: str, values: Iterable[object]) -> Iterator[str]:
    """The CSV text of a plain column of ``kind``: what :func:`csv_column` gives for its typed form."""
    for value in values:
        if value is None:
            yield ""
        elif kind == "bool":
            yield "true" if value else "false"
        elif kind == "timestamp":
            yield _stamp(value)
        elif kind == "float":
            yield repr(float(value))  # type: ignore[arg-type]
        else:
            yield neutralise_formula(str(value))


def write_csv(handle: IO[bytes], columns: RunColumns, frame: pd.DataFrame | None = None) -> None:
    """Stream the CSV export to ``handle``: from the plain ``columns``, or from ``frame`` (their typed form, for
    columns that are not plain)."""
    if frame is not None:
        cells: list[Iterable[object]] = [csv_column(frame[name]) for name in columns.names]
    else:
        cells = [plain_cells(columns.kinds[name], columns.values[name]) for name in columns.names]
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
