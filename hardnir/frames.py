"""Result rows as one typed pandas DataFrame: the contract dtypes, schema columns first, extras after."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Final

import numpy as np
import pandas as pd

from hardnir.schema import CATEGORIES, COLUMN_KINDS, COLUMNS, RUNBOOKS
from hardnir.store.columns import columns_of

#: Column added by :func:`hardnir.store.load_runs`: when the row's run started.
RUN_STARTED_AT: Final[str] = "run_started_at"

STRING_COLUMNS: Final[tuple[str, ...]] = tuple(c for c, kind in COLUMN_KINDS.items() if kind == "text")
TIMESTAMP_DTYPE: Final = pd.DatetimeTZDtype(unit="us", tz="UTC")


def _category_dtype(column: str) -> pd.CategoricalDtype:
    """The dtype of a category column of the contract (ordered when its kind says so)."""
    return pd.CategoricalDtype(list(CATEGORIES[column]), ordered=COLUMN_KINDS[column] == "ordered")


PHASE_DTYPE: Final = _category_dtype("phase")
STATUS_DTYPE: Final = _category_dtype("status")
SEVERITY_DTYPE: Final = _category_dtype("severity")


def _runbook_dtype(values: pd.Series) -> pd.CategoricalDtype:
    """Categories: the schema's runbooks, then any other runbook names present (sorted)."""
    present = {str(v) for v in values.dropna().unique()}
    extra = sorted(present.difference(RUNBOOKS))
    return pd.CategoricalDtype([*RUNBOOKS, *extra])


def _as_category(values: pd.Series, dtype: pd.CategoricalDtype, name: str) -> pd.Series:
    """Cast to ``dtype``, raising ValueError (not silently NaN) for values outside its categories."""
    lost = values.notna() & ~values.astype(object).isin(list(dtype.categories))
    if lost.any():
        bad = sorted({str(v) for v in values[lost].unique()})
        raise ValueError(f"column {name!r} has unknown values: {', '.join(map(repr, bad))}")
    return values.astype(dtype)


def _as_bool(values: pd.Series) -> pd.Series:
    """``changed`` as bool, refusing anything but booleans (``"false"`` must not silently become True)."""
    if values.dtype != bool and not values.map(lambda v: isinstance(v, bool | np.bool_)).all():
        raise ValueError("column 'changed' must hold only booleans")
    return values.astype(bool)


def _infer_extra(values: pd.Series) -> pd.Series:
    """Type an extra column: nullable dtypes where pandas can tell, else text (JSON for containers)."""
    if isinstance(values.dtype, pd.StringDtype):
        return values.astype("string")
    if values.dtype != object:
        return values
    converted = values.convert_dtypes()
    if isinstance(converted.dtype, pd.StringDtype):
        return converted.astype("string")
    if converted.dtype != object:
        return converted
    as_text = values.map(
        lambda v: v if v is None or isinstance(v, str) else json.dumps(v, sort_keys=True, default=str)
    )
    return as_text.astype("string")


def coerce(frame: pd.DataFrame) -> pd.DataFrame:
    """Give a frame holding the schema columns the contract dtypes, schema columns first, extras after."""
    frame = frame.reset_index(drop=True)
    stamps = pd.to_datetime(frame["started_at"], utc=True, format="ISO8601")
    typed: dict[str, pd.Series] = {col: frame[col].astype("string") for col in STRING_COLUMNS}
    typed.update(
        runbook=frame["runbook"].astype(_runbook_dtype(frame["runbook"])),
        phase=_as_category(frame["phase"], PHASE_DTYPE, "phase"),
        status=_as_category(frame["status"], STATUS_DTYPE, "status"),
        severity=_as_category(frame["severity"], SEVERITY_DTYPE, "severity"),
        changed=_as_bool(frame["changed"]),
        started_at=stamps.astype(TIMESTAMP_DTYPE),
        duration_s=pd.to_numeric(frame["duration_s"]).astype("float64"),
    )
    ordered = {col: typed[col] for col in COLUMNS}
    ordered.update({col: _infer_extra(frame[col]) for col in frame.columns if col not in COLUMNS})
    return pd.DataFrame(ordered, index=pd.RangeIndex(len(frame)))


def to_frame(rows: Iterable[Mapping[str, object]]) -> pd.DataFrame:
    """One DataFrame over ``rows``, built once from column lists, with the contract dtypes.

    Empty input gives an empty frame with the same columns and dtypes, so code downstream never special-cases
    it.
    """
    materialised = list(rows)
    columns = columns_of(materialised)
    data = {col: pd.Series([row.get(col) for row in materialised], dtype=object) for col in columns}
    return coerce(pd.DataFrame(data, columns=columns))
