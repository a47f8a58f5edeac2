"""The result-row contract shared by runbooks, CSV readers, notebooks and auditors (see design.md)."""

from __future__ import annotations

from typing import Final, Literal

COLUMNS: Final[tuple[str, ...]] = (
    "run_id",
    "runbook",
    "host",
    "control",
    "phase",
    "status",
    "severity",
    "changed",
    "expected",
    "observed",
    "message",
    "evidence",
    "started_at",
    "duration_s",
)

PHASES: Final[tuple[str, ...]] = ("check", "fix", "verify", "rollback")
SEVERITIES: Final[tuple[str, ...]] = ("low", "medium", "high", "critical")
CHECK_STATUSES: Final[tuple[str, ...]] = ("pass", "fail", "not_applicable", "error", "waived")
FIX_STATUSES: Final[tuple[str, ...]] = ("fixed", "would_fix", "unchanged", "fix_failed", "blocked", "error")
ROLLBACK_STATUSES: Final[tuple[str, ...]] = ("restored", "unchanged", "rollback_failed", "error")
STATUSES: Final[tuple[str, ...]] = tuple(
    dict.fromkeys(CHECK_STATUSES + FIX_STATUSES + ROLLBACK_STATUSES)
)
RUNBOOKS: Final[tuple[str, ...]] = ("audit", "remediate", "rollback")

EVIDENCE_MAX_CHARS: Final[int] = 4000
MESSAGE_MAX_CHARS: Final[int] = 500

Severity = Literal["low", "medium", "high", "critical"]
Phase = Literal["check", "fix", "verify", "rollback"]

# Rows are plain dicts with exactly COLUMNS as keys (plus optional extra columns after them).
Row = dict[str, object]
