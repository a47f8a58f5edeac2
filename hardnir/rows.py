"""Result rows and their cleaning: plain dicts, no pandas.

A row is a plain dict with exactly :data:`hardnir.schema.COLUMNS` as keys, in order, optionally followed by extra
columns (``host_key``, the ``waiver_*`` columns). :func:`make_row` is the one place that builds rows, so every row
that leaves a runbook is already validated and safe to show: statuses are checked against the schema, the message
is one line, evidence is capped, and control characters are neutralised (a hostile host must not be able to drive
an auditor's terminal with ANSI escapes or smuggle NUL bytes into a CSV file).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Final

from hardnir.schema import (
    CHECK_STATUSES,
    EVIDENCE_MAX_CHARS,
    FIX_STATUSES,
    MESSAGE_MAX_CHARS,
    PHASES,
    ROLLBACK_STATUSES,
    SEVERITIES,
    Row,
)

#: Statuses each phase may carry (design.md, "Result rows").
PHASE_STATUSES: Final[Mapping[str, tuple[str, ...]]] = {
    "check": CHECK_STATUSES,
    "verify": CHECK_STATUSES,
    "fix": FIX_STATUSES,
    "rollback": ROLLBACK_STATUSES,
}

# C0 controls except tab, DEL, C1 controls; lone surrogates cannot be encoded as UTF-8 at all.
_CONTROL_RE: Final = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f]")
_SURROGATE_RE: Final = re.compile("[\ud800-\udfff]")
_NAMED_ESCAPES: Final[Mapping[str, str]] = {"\n": "\\n", "\r": "\\r"}
# Everything str.splitlines() treats as a line break, so a message really is one line.
_LINE_BREAK_RE: Final = re.compile("[\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]+")


def _escape_control(match: re.Match[str]) -> str:
    """Visible replacement for one control character: ``\\n``, ``\\r`` or ``\\xNN``."""
    char = match.group(0)
    return _NAMED_ESCAPES.get(char, f"\\x{ord(char):02x}")


def neutralise_controls(text: str) -> str:
    """Replace control characters (C0 but tab, DEL, C1) by visible escapes, lone surrogates by U+FFFD.

    Why: cells end up in terminals and spreadsheets; raw ESC sequences could rewrite what an auditor sees and
    NUL bytes break many CSV readers. Escapes keep the text readable (``\\x1b[31m``) without being live.
    """
    if text.isprintable():  # the usual cell: no control character, no surrogate (both are non-printable)
        return text
    return _CONTROL_RE.sub(_escape_control, _SURROGATE_RE.sub("\ufffd", text))


def truncate(text: str, limit: int) -> str:
    """Cap ``text`` at ``limit`` characters, ending with ``…[truncated N chars]`` when anything was cut."""
    if len(text) <= limit:
        return text
    keep = limit
    for _ in range(3):  # the marker's length depends on N; converges in at most two rounds
        keep = max(0, limit - len(f"…[truncated {len(text) - keep} chars]"))
    marker = f"…[truncated {len(text) - keep} chars]"
    if len(marker) > limit:  # no room for the marker: a hard cut still honours the cap
        return text[:limit]
    return text[:keep] + marker


def clean_message(text: str) -> str:
    """One-line, control-free, capped message: line breaks become spaces, then :func:`truncate`."""
    one_line = text.strip() if text.isprintable() else _LINE_BREAK_RE.sub(" ", text).strip()  # breaks: non-printable
    return truncate(neutralise_controls(one_line), MESSAGE_MAX_CHARS)


def evidence_text(evidence: object) -> str:
    """Evidence as text: strings as-is, anything else as sorted JSON; neutralised and capped."""
    if isinstance(evidence, str):
        text = evidence
    else:
        text = json.dumps(evidence, sort_keys=True, default=str, ensure_ascii=False)
    return truncate(neutralise_controls(text), EVIDENCE_MAX_CHARS)


def _check_choice(name: str, value: str, allowed: Sequence[str]) -> None:
    """Raise ValueError unless ``value`` is one of ``allowed``."""
    if value not in allowed:
        raise ValueError(f"unknown {name} {value!r}; expected one of: {', '.join(allowed)}")


def _utc(started_at: datetime) -> datetime:
    """``started_at`` converted to UTC; naive datetimes are rejected because their zone is a guess."""
    if not isinstance(started_at, datetime):
        raise TypeError(f"started_at must be a datetime, got {type(started_at).__name__}")
    if started_at.tzinfo is None or started_at.utcoffset() is None:
        raise ValueError("started_at must be timezone-aware (use datetime.now(timezone.utc))")
    return started_at.astimezone(UTC)


def _duration(duration_s: float) -> float:
    """``duration_s`` as a finite float, negatives clamped to 0 (a wall-clock step must not lose a row)."""
    value = float(duration_s)
    if not math.isfinite(value):
        raise ValueError(f"duration_s must be a finite number, got {duration_s!r}")
    return max(value, 0.0)


def clean_cell(value: object) -> object:
    """Neutralise control characters if ``value`` is a string; other values pass through."""
    return neutralise_controls(value) if isinstance(value, str) else value


def make_row(
    *,
    run_id: str,
    runbook: str,
    host: str,
    control: str,
    phase: str,
    status: str,
    severity: str,
    changed: bool = False,
    expected: str = "",
    observed: str = "",
    message: str = "",
    evidence: object = "",
    started_at: datetime,
    duration_s: float,
    **extra: object,
) -> Row:
    """Build one validated result row with exactly ``COLUMNS`` in order, then ``extra`` columns.

    Raises ValueError for an unknown phase, severity, or a status the phase cannot carry, for a naive
    ``started_at`` and for a non-finite duration, so that bad rows fail where they are made, not in a notebook.
    """
    _check_choice("phase", phase, PHASES)
    _check_choice(f"status for phase {phase!r}", status, PHASE_STATUSES[phase])
    _check_choice("severity", severity, SEVERITIES)
    if not isinstance(changed, bool):
        raise TypeError(f"changed must be a bool, got {type(changed).__name__}")
    row: Row = {
        "run_id": neutralise_controls(str(run_id)),
        "runbook": neutralise_controls(str(runbook)),
        "host": neutralise_controls(str(host)),
        "control": neutralise_controls(str(control)),
        "phase": phase,
        "status": status,
        "severity": severity,
        "changed": changed,
        "expected": neutralise_controls(str(expected)),
        "observed": neutralise_controls(str(observed)),
        "message": clean_message(str(message)),
        "evidence": evidence_text(evidence),
        "started_at": _utc(started_at),
        "duration_s": _duration(duration_s),
    }
    row.update({key: clean_cell(value) for key, value in extra.items()})
    return row
