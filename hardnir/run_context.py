"""What every task of one runbook invocation shares, and the one place where results become rows.

Tasks return findings and outcomes; `RunContext.row` turns them into result rows (`hardnir.rows`), so runbooks only
compose tasks. `finish_host` is the end of every host's runbook: give the rows the host's platform columns (from the
facts the runbook gathered), keep summaries, close SSH, record the rows. `RunContext.error_rows` (a host the runner
lost or never read) carry the platform columns empty.
"""

from __future__ import annotations

import contextlib
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from nornir.core.task import Task

from hardnir import platforms
from hardnir.control import Control, Finding
from hardnir.facts import Facts
from hardnir.serial_locks import serial_lock


def new_run_id(runbook: str) -> str:
    return f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{runbook}-{secrets.token_hex(3)}"


@dataclass
class RunContext:
    """What every task of one runbook invocation shares."""

    run_id: str
    runbook: str
    controls: Sequence[Control]
    dry_run: bool = False
    allow_lockout: bool = False
    waived: Callable[[str, str], str | None] = lambda host, control: None
    on_host_done: Callable[[str, list[dict[str, Any]]], None] = lambda host, rows: None  # after record()
    rows_by_host: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    serial_lock: Callable[[str], contextlib.AbstractContextManager[Any]] = serial_lock  # Dask: one across workers

    def row(
        self,
        host: str,
        control: Control,
        phase: str,
        status: str,
        started: float,
        *,
        changed: bool = False,
        expected: str = "",
        observed: str = "",
        message: str = "",
        evidence: object = "",
        fingerprint: str = "",
        duration: float | None = None,
    ) -> dict[str, Any]:
        """One result row; `duration` is the time this step took (default: from `started` until now)."""
        from hardnir.rows import make_row

        return make_row(
            run_id=self.run_id,
            runbook=self.runbook,
            host=host,
            control=control.id,
            phase=phase,
            status=status,
            severity=control.meta.severity,
            changed=changed,
            expected=expected,
            observed=observed,
            message=message,
            evidence=evidence,
            started_at=datetime.fromtimestamp(started, UTC),
            duration_s=round(time.time() - started if duration is None else duration, 3),
            host_key=fingerprint,
        )

    def finding_row(self, host: str, control: Control, phase: str, finding: Finding, started: float,
                    fingerprint: str, duration: float | None = None) -> dict[str, Any]:
        return self.row(host, control, phase, finding.status, started, expected=finding.expected,
                        observed=finding.observed, message=finding.message, evidence=dict(finding.evidence),
                        fingerprint=fingerprint, duration=duration)

    def error_rows(self, host: str, phases: Sequence[str], message: str, started: float,
                   controls: Sequence[Control] | None = None, fingerprint: str = "") -> list[dict[str, Any]]:
        """An `error` row per control and phase, the platform columns empty (`finish_host` fills them when the
        host's facts were gathered)."""
        return platforms.stamp([
            self.row(host, c, phase, "error", started, message=message, fingerprint=fingerprint)
            for c in (controls or self.controls)
            for phase in phases
        ])

    def record(self, host: str, rows: list[dict[str, Any]]) -> None:
        with self.lock:
            self.rows_by_host[host] = rows
        self.on_host_done(host, rows)


def gathered_facts(task: Task) -> Facts | None:
    """The facts this host task gathered last (None when it gathered none)."""
    found = [r.result for r in task.results if isinstance(r.result, Facts)]
    return found[-1] if found else None


def release_facts(task: Task) -> None:
    """Keep a one-line summary of each Facts and Finding this host task produced, not the objects themselves: at
    thousands of hosts they would hold hundreds of MB in Nornir's results until the run ends (the rows keep
    every finding)."""
    for result in task.results:
        if isinstance(result.result, Facts):
            result.result = result.result.summary()
        elif isinstance(result.result, Finding):  # the rows carry it now; keep its one-line verdict
            result.result = f"{result.result.status}: {result.result.message}"


def finish_host(task: Task, ctx: RunContext, rows: list[dict[str, Any]]) -> None:
    """A host's runbook is done: give its rows the host's platform columns (from the facts it gathered last; empty
    when it gathered none), keep only a summary of its facts, close its SSH connection now and record its rows.
    An idle paramiko transport keeps a thread polling every 0.1 s until it is closed; left open until the end of
    the run, thousands of them cost more CPU than the work itself."""
    from hardnir.hostdata import forget

    facts = gathered_facts(task)
    platform, version = (facts.platform, facts.platform_version) if facts is not None else ("", "")
    platforms.stamp(rows, platform, version)
    release_facts(task)
    forget(task.host)
    with contextlib.suppress(Exception):  # closing is best effort: the rows are what matters
        task.host.close_connections()
    ctx.record(task.host.name, rows)
