"""What a fix or rollback task returns, and how the applier's exit codes read as outcomes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hardnir import fixes


@dataclass(frozen=True)
class FixOutcome:
    status: str
    message: str
    changed: bool  # the host was changed (also a fix that failed half-way)
    evidence: Mapping[str, Any]
    run_id: str = ""  # the run the change is recorded under on the host (what `rollback_control` takes)


def apply_failure(code: int, stderr: str) -> tuple[str, str, bool]:
    detail = (stderr.strip().splitlines() or [""])[-1][:200]
    if code == fixes.EXIT_RESTORED:
        return "fix_failed", f"fix failed and was undone, host left in its original state: {detail}", False
    if code == fixes.EXIT_BROKEN:
        return "fix_failed", f"fix failed AND its undo failed, host needs a human: {detail}", True
    if code == fixes.EXIT_NO_STATE:
        return "error", f"nothing changed, cannot record state on the host: {detail}", False
    if code == fixes.EXIT_PRECHECK:
        return "fix_failed", f"nothing changed, precheck refused: {detail}", False
    return "fix_failed", f"fix script exit {code}: {detail}", True
