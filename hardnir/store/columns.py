"""A run's rows as columns for the writers of ``results.parquet`` and ``results.csv``, without pandas.

Every string cell is redacted and stripped of control characters here (:func:`hardnir.store.redaction.safe_row`,
one row at a time): no second copy of the rows is kept, and a cell that needs no change stays the same object.
Each column has a kind from the contract (:data:`hardnir.schema.COLUMN_KINDS`; extra columns are text).
:attr:`RunColumns.plain` says whether every cell already has the plain Python type of its kind, as the rows of
:func:`hardnir.rows.make_row` do; other rows (a plugin's int column, a hand-made row with a string timestamp) are
typed by pandas, as :func:`hardnir.frames.to_frame` does.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from hardnir.schema import CATEGORIES, COLUMN_KINDS, COLUMNS
from hardnir.store.redaction import safe_row

EXTRA_KIND: Final[str] = "text"


def columns_of(rows: Sequence[Mapping[str, object]]) -> list[str]:
    """Schema columns, then extra keys in order of first appearance; ValueError if a row lacks a column."""
    extras: dict[str, None] = {}
    for index, row in enumerate(rows):
        missing = [col for col in COLUMNS if col not in row]
        if missing:
            raise ValueError(f"row {index} lacks columns: {', '.join(missing)}")
        extras.update((key, None) for key in row if key not in COLUMNS)
    return [*COLUMNS, *extras]


def _plain(kind: str, values: Sequence[object], categories: Sequence[str] | None) -> bool:
    """Whether every cell of a column has the plain Python type its kind needs: text is a string or None; the
    others are never None (a category is one of its column's, a timestamp is aware, a number finite)."""
    if kind == "text":
        return all(v is None or type(v) is str for v in values)
    if kind in ("category", "ordered"):
        members = set(categories or ())
        return all(type(v) is str and v in members for v in values)
    if kind == "bool":
        return all(type(v) is bool for v in values)
    if kind == "timestamp":
        return all(type(v) is datetime and v.utcoffset() is not None for v in values)
    return all(type(v) in (int, float) and math.isfinite(v) for v in values)  # type: ignore[arg-type]


@dataclass
class RunColumns:
    """The cells of a run, column by column, with each column's kind and (category columns) categories."""

    names: list[str]
    values: dict[str, list[object]]
    kinds: dict[str, str]
    categories: dict[str, tuple[str, ...]]

    def __len__(self) -> int:
        return len(self.values[self.names[0]])

    @property
    def plain(self) -> bool:
        """Every cell has the plain type of its kind, and every extra column holds some text (an all-None
        column's type is pandas' guess)."""
        extras_typed = all(any(v is not None for v in self.values[n]) for n in self.names if n not in COLUMN_KINDS)
        return extras_typed and all(
            _plain(self.kinds[n], self.values[n], self.categories.get(n)) for n in self.names
        )


def run_columns(rows: Sequence[Mapping[str, object]], pattern: re.Pattern[str] | None) -> RunColumns:
    """The redacted, control-free cells of ``rows`` as columns (a missing extra cell is None)."""
    names = columns_of(rows)
    values: dict[str, list[object]] = {name: [] for name in names}
    appends = [(name, values[name].append) for name in names]
    for row in rows:
        safe = safe_row(row, pattern)
        for name, append in appends:
            append(safe.get(name))
    present = {v for v in values["runbook"] if type(v) is str}
    categories = {name: tuple(CATEGORIES[name]) for name in CATEGORIES}
    categories["runbook"] += tuple(sorted(present.difference(CATEGORIES["runbook"])))
    kinds = {name: COLUMN_KINDS.get(name, EXTRA_KIND) for name in names}
    return RunColumns(names, values, kinds, categories)
