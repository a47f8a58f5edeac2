"""The ``results.csv`` format: UTF-8, header = columns in order, ISO 8601 UTC timestamps, ``true``/``false``,
and formula neutralisation (a cell a spreadsheet would run gets a leading ``'``)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Final

import pandas as pd

from hardnir.schema import COLUMNS

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
    return isinstance(series.dtype, pd.StringDtype | pd.CategoricalDtype) or series.dtype == object


def csv_column(series: pd.Series) -> pd.Series:
    """Text form of one column for the CSV export (timestamps ISO UTC, booleans true/false, formulas neutralised)."""
    if str(series.dtype).startswith("datetime64"):
        stamps: pd.Series = series.dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ").astype(object)
        return stamps.where(series.notna(), "")
    if series.dtype == bool or isinstance(series.dtype, pd.BooleanDtype):
        return series.map({True: "true", False: "false"}).astype(object).where(series.notna(), "")
    if _is_text(series):
        text = series.astype(object).where(series.notna(), "")
        return text.map(lambda v: neutralise_formula(str(v)))
    return series.astype(object).where(series.notna(), "")


def csv_bytes(frame: pd.DataFrame) -> bytes:
    """The CSV export of ``frame`` as UTF-8 bytes."""
    text = pd.DataFrame({col: csv_column(frame[col]) for col in frame.columns}, columns=list(frame.columns))
    return text.to_csv(index=False, lineterminator="\n").encode("utf-8")


def read_csv(path: Path) -> pd.DataFrame:
    """Read a ``results.csv`` back into raw columns, undoing formula neutralisation on text columns."""
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
