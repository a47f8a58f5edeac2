"""The result-row contract shared by runbooks, CSV readers, notebooks and auditors (see design.md)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final, Literal

PHASES: Final[tuple[str, ...]] = ("check", "fix", "verify", "rollback")
SEVERITIES: Final[tuple[str, ...]] = ("low", "medium", "high", "critical")
CHECK_STATUSES: Final[tuple[str, ...]] = ("pass", "fail", "not_applicable", "error", "waived")
FIX_STATUSES: Final[tuple[str, ...]] = ("fixed", "would_fix", "unchanged", "fix_failed", "blocked", "error")
ROLLBACK_STATUSES: Final[tuple[str, ...]] = ("restored", "unchanged", "rollback_failed", "error")
STATUSES: Final[tuple[str, ...]] = tuple(
    dict.fromkeys(CHECK_STATUSES + FIX_STATUSES + ROLLBACK_STATUSES)
)
RUNBOOKS: Final[tuple[str, ...]] = ("audit", "remediate", "rollback")

#: The one column contract, in column order: each column's kind, from which the pandas dtypes
#: (:mod:`hardnir.frames`) and the Arrow schema of ``results.parquet`` (:mod:`hardnir.store.arrowfile`) are made.
#: ``text``: a string; ``category``/``ordered``: one of :data:`CATEGORIES` (ordered: the order ranks them);
#: ``bool``; ``timestamp``: UTC, microseconds; ``float``.
COLUMN_KINDS: Final[Mapping[str, str]] = {
    "run_id": "text",
    "runbook": "category",
    "host": "text",
    "control": "text",
    "phase": "category",
    "status": "category",
    "severity": "ordered",
    "changed": "bool",
    "expected": "text",
    "observed": "text",
    "message": "text",
    "evidence": "text",
    "started_at": "timestamp",
    "duration_s": "float",
}
COLUMNS: Final[tuple[str, ...]] = tuple(COLUMN_KINDS)
#: The values of each category column; ``runbook`` also takes any other name (a plugin's runbook), sorted after these.
CATEGORIES: Final[Mapping[str, tuple[str, ...]]] = {
    "runbook": RUNBOOKS,
    "phase": PHASES,
    "status": STATUSES,
    "severity": SEVERITIES,
}

EVIDENCE_MAX_CHARS: Final[int] = 4000
MESSAGE_MAX_CHARS: Final[int] = 500

Severity = Literal["low", "medium", "high", "critical"]
Phase = Literal["check", "fix", "verify", "rollback"]

# Rows are plain dicts with exactly COLUMNS as keys (plus optional extra columns after them).
Row = dict[str, object]
