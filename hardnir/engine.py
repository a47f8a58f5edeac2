"""The Nornir tasks every runbook is built from: gather facts, check a control, fix it, roll it back.

Each task is a plain `(task: Task, ...) -> Result` function. Tasks return findings and outcomes; turning them
into result rows happens here in one place (`RunContext.row`), so runbooks only compose tasks.
`Result.failed` is reserved for "could not run" (unreachable, timeout); non-compliance is data.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from nornir.core.task import Result, Task

from hardnir import fixes, probe
from hardnir.control import Control, Finding
from hardnir.facts import Facts
from hardnir.ssh import CONNECTION_NAME, HardnirConnection, SSHError

DEFAULT_DEADMAN_SECONDS = 120

_serial_locks: dict[str, threading.Lock] = {}
_serial_guard = threading.Lock()


def serial_lock(key: str) -> threading.Lock:
    with _serial_guard:
        return _serial_locks.setdefault(key, threading.Lock())


@dataclass
class RunContext:
    """What every task of one runbook invocation shares."""

    run_id: str
    runbook: str
    controls: Sequence[Control]
    dry_run: bool = False
    allow_lockout: bool = False
    waived: Callable[[str, str], str | None] = lambda host, control: None
    on_host_done: Callable[[str, list[dict[str, Any]]], None] = lambda host, rows: None
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
        return [
            self.row(host, c, phase, "error", started, message=message, fingerprint=fingerprint)
            for c in (controls or self.controls)
            for phase in phases
        ]

    def record(self, host: str, rows: list[dict[str, Any]]) -> None:
        with self.lock:
            self.rows_by_host[host] = rows
        self.on_host_done(host, rows)


def connection(task: Task) -> HardnirConnection:
    conn: HardnirConnection = task.host.get_connection(CONNECTION_NAME, task.nornir.config)
    return conn


def params_for(task: Task, control: Control) -> dict[str, Any]:
    from hardnir.hostdata import control_params

    return control_params(task.host, control)


def gather_facts(task: Task, controls: Sequence[Control], timeout: float | None = None) -> Result:
    """One probe round trip for every fact the controls need; raises SSHError when the host cannot be read."""
    return Result(host=task.host, result=_probe(task, connection(task), controls, timeout))


def _probe(task: Task, conn: HardnirConnection, controls: Sequence[Control], timeout: float | None) -> Facts:
    timeout = timeout or conn.command_timeout
    items: list[tuple[str, str]] = []
    for control in controls:
        items.extend(control.probe_items(params_for(task, control)))
    script = probe.build(items)
    result = conn.run(script.script, sudo=True, timeout=timeout)
    if result.timed_out:
        raise SSHError(f"probe timed out after {timeout:g}s")
    if result.exit_status != 0:
        first = (result.stderr.strip().splitlines() or [f"exit {result.exit_status}"])[0][:200]
        if "password is required" in result.stderr or "a terminal is required" in result.stderr:
            raise SSHError(f"sudo as {conn.login_user} needs a password (no NOPASSWD rule): {first}")
        raise SSHError(f"probe failed (exit {result.exit_status}): {first}")
    try:
        parsed = script.parse(result.stdout)
    except probe.ProbeParseError as exc:
        raise SSHError(str(exc)) from None
    return Facts(parsed, host=task.host.name, address=str(task.host.hostname or ""))


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
    """A host's runbook is done: keep only a summary of its facts, close its SSH connection now and record its
    rows. An idle paramiko transport keeps a thread polling every 0.1 s until it is closed; left open until the end
    of the run, thousands of them cost more CPU than the work itself."""
    from hardnir.hostdata import forget

    release_facts(task)
    forget(task.host)
    with contextlib.suppress(Exception):  # closing is best effort: the rows are what matters
        task.host.close_connections()
    ctx.record(task.host.name, rows)


def check_control(task: Task, control: Control, facts: Facts) -> Result:
    """Judge one control on gathered facts (pure; a crash in a check becomes an `error` finding)."""
    try:
        finding = control.check(facts, params_for(task, control))
    except Exception as exc:  # a bug or an unforeseen host state must not lose the other controls
        finding = Finding("error", "", "", f"check crashed: {exc.__class__.__name__}: {exc}"[:300])
    return Result(host=task.host, result=finding)


@dataclass(frozen=True)
class FixOutcome:
    status: str
    message: str
    changed: bool
    evidence: Mapping[str, Any]


def fallback_connection(task: Task) -> HardnirConnection | None:
    """A connection over the inventory's fallback admin path (`hardnir_fallback`), or None if none is set."""
    fallback = task.host.get("hardnir_fallback")
    if not isinstance(fallback, Mapping) or not fallback.get("username"):
        return None
    params = task.host.get_connection_parameters(CONNECTION_NAME)
    extras = dict(params.extras or {})
    extras.update({k: v for k, v in fallback.items() if k not in ("username", "port", "hostname")})
    alt = HardnirConnection()
    alt.open(
        str(fallback.get("hostname") or params.hostname),
        str(fallback["username"]),
        None,
        int(fallback.get("port") or params.port or 22),
        None,
        extras,
    )
    return alt


def verify_fallback(task: Task) -> tuple[bool, str]:
    """Prove the fallback admin path can log in and use sudo."""
    try:
        alt = fallback_connection(task)
    except SSHError as exc:
        return False, f"fallback admin path failed: {exc}"
    if alt is None:
        return False, "no fallback admin path configured (hardnir_fallback)"
    try:
        result = alt.run("true", sudo=True, timeout=20)
        if not result.ok:
            return False, f"fallback {alt.login_user} logged in but sudo failed"
        return True, f"fallback admin {alt.login_user} verified (login + sudo)"
    except SSHError as exc:
        return False, f"fallback admin path failed: {exc}"
    finally:
        alt.close()


def gather_facts_via_fallback(task: Task, controls: Sequence[Control], timeout: float | None = None) -> Result:
    """The probe over the fallback admin path (used when the login user lost sudo on purpose)."""
    alt = fallback_connection(task)
    if alt is None:
        raise SSHError("no fallback admin path configured")
    try:
        return Result(host=task.host, result=_probe(task, alt, controls, timeout))
    finally:
        alt.close()


def gather_login(task: Task) -> Result:
    """Just connect (rollback needs no facts)."""
    return Result(host=task.host, result=connection(task).host_key_fingerprint)


def subtask_error(exc: Exception) -> str:
    """The one-line reason behind a failed subtask (our SSHError messages are already one line)."""
    inner = getattr(exc, "result", None)
    cause = getattr(inner, "exception", None) if inner is not None else None
    cause = cause or exc
    text = str(cause).strip().splitlines()[0] if str(cause).strip() else cause.__class__.__name__
    if not isinstance(cause, SSHError):
        text = f"{cause.__class__.__name__}: {text}"
    return text[:300]


def fix_control(task: Task, control: Control, facts: Facts, finding: Finding, ctx: RunContext) -> Result:
    """Plan the fix, then (unless dry run) apply it in one round trip. Verification is the runbook's job."""
    params = params_for(task, control)
    if finding.status in ("pass", "not_applicable"):
        return Result(host=task.host, result=FixOutcome("unchanged", "already compliant"
                      if finding.status == "pass" else "not applicable", False, {}))
    if finding.status == "error":
        return Result(host=task.host, result=FixOutcome("error", "not fixed: the check could not run", False, {}))
    reason = ctx.waived(task.host.name, control.id)
    if reason:
        return Result(host=task.host, result=FixOutcome("unchanged", f"not fixed: waived ({reason})", False, {}))
    try:
        plan = control.plan_fix(facts, params)
    except Exception as exc:
        return Result(host=task.host, result=FixOutcome("fix_failed", f"planning crashed: {exc}"[:300], False, {}))
    evidence: dict[str, Any] = {"plan": plan.describe()}
    if plan.blocked:
        return Result(host=task.host, result=FixOutcome("blocked", plan.blocked, False, evidence))
    if plan.empty:
        return Result(host=task.host, result=FixOutcome("unchanged", "nothing to change", False, evidence))
    guard_note = ""
    if plan.lockout:
        verified, why = verify_fallback(task)
        evidence["fallback"] = why
        if not verified and not ctx.allow_lockout:
            return Result(host=task.host, result=FixOutcome(
                "blocked", f"lockout guard: {plan.lockout}; {why}; pass --allow-lockout to apply anyway",
                False, evidence))
        guard_note = f" ({why})" if verified else " (--allow-lockout)"
    if ctx.dry_run:
        return Result(host=task.host, result=FixOutcome(
            "would_fix", f"dry run: would apply {len(plan.steps)} change(s)" + (
                f" + {len(plan.post)} command(s)" if plan.post else "") + guard_note, False, evidence))
    deadman = int(params.get("hardnir_deadman_seconds", DEFAULT_DEADMAN_SECONDS)) if plan.deadman else 0
    script = fixes.apply_script(plan, ctx.run_id, control.id, deadman)
    conn = connection(task)
    # Serial controls fix one host per key at a time: the control's serial_key names the host's cluster (the
    # inventory's etcd_cluster, the peers it is configured with, or the host alone for a standalone member).
    if control.meta.serial:
        with ctx.serial_lock(f"{control.id}:{control.serial_key(facts, params)}"):
            result = conn.run(script, sudo=True)
    else:
        result = conn.run(script, sudo=True)
    evidence["stderr"] = result.stderr[-1500:]
    if result.timed_out:
        return Result(host=task.host, result=FixOutcome(
            "fix_failed", f"fix timed out after {conn.command_timeout:g}s (remote side killed)", True, evidence))
    if result.exit_status != 0:
        return Result(host=task.host, result=FixOutcome(*_apply_failure(result.exit_status, result.stderr),
                                                         evidence))
    if plan.deadman and deadman:
        ok, why = _confirm_new_login(conn, ctx.run_id, control.id)
        evidence["deadman"] = why
        if not ok:
            return Result(host=task.host, result=FixOutcome("fix_failed", why, True, evidence))
    if plan.lockout and guard_note.startswith(" (fallback"):
        verified, why = verify_fallback(task)
        evidence["fallback_after"] = why
        if not verified:
            return Result(host=task.host, result=FixOutcome(
                "fix_failed", f"applied, but the fallback path no longer works: {why}", True, evidence))
    note = f"; {plan.note}" if plan.note else ""
    return Result(host=task.host, result=FixOutcome("fixed", f"applied{guard_note}{note}", True, evidence))


def _apply_failure(code: int, stderr: str) -> tuple[str, str, bool]:
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


def _confirm_new_login(conn: HardnirConnection, run_id: str, control_id: str) -> tuple[bool, str]:
    """Open a brand-new SSH connection; only if it works, disarm the dead-man timer."""
    unit = fixes.deadman_unit(run_id, control_id)
    try:
        fresh = conn.fresh()
        try:
            fresh.run("true", timeout=15)
        finally:
            fresh.close()
    except SSHError as exc:
        return False, f"a fresh SSH login failed after the change ({exc}); the dead-man timer {unit} will " \
                      "restore the previous state"
    stop = conn.run(f"systemctl stop {unit}.timer; systemctl reset-failed {unit}.timer {unit}.service "
                    "2>/dev/null; true", sudo=True, timeout=30)
    if not stop.ok:
        return False, "fresh login worked but the dead-man timer could not be disarmed"
    return True, "fresh SSH login verified; dead-man timer disarmed"


def rollback_control(task: Task, control: Control, run_id: str) -> Result:
    """Run the rollback recorded on the host for this control in that run."""
    conn = connection(task)
    result = conn.run(fixes.rollback_command(run_id, control.id), sudo=True)
    outcome = fixes.parse_rollback(result.stdout, result.exit_status)
    detail = result.stderr.strip()[-300:]
    return Result(host=task.host, result=FixOutcome(outcome.status, outcome.message
                                                    + (f": {detail}" if outcome.status != "restored" and detail
                                                       else ""), outcome.status == "restored", {}))


def today() -> date:
    return datetime.now(UTC).date()
