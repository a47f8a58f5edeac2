"""The Nornir tasks hardnir's runbooks are built from: gather facts, check a control, fix it, roll it back.

Each is a plain `(task: Task, ...) -> Result` function a Nornir user can also call with `nr.run`.
`Result.failed` is reserved for "could not run" (unreachable, timeout); non-compliance is data.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from typing import Any

from nornir.core.task import Result, Task

from hardnir import fixes, probe
from hardnir.control import Control, Finding, as_control, catalogue
from hardnir.deadman import DEFAULT_DEADMAN_SECONDS, confirm_new_login
from hardnir.facts import Facts
from hardnir.fix_outcome import FixOutcome, apply_failure
from hardnir.lockout_guard import fallback_connection, verify_fallback
from hardnir.run_context import RunContext, new_run_id
from hardnir.ssh import CONNECTION_NAME, HardnirConnection, SSHError


def connection(task: Task) -> HardnirConnection:
    conn: HardnirConnection = task.host.get_connection(CONNECTION_NAME, task.nornir.config)
    return conn


def params_for(task: Task, control: Control) -> dict[str, Any]:
    from hardnir.hostdata import control_params

    return control_params(task.host, control)


def gather_facts(task: Task, controls: Sequence[str | Control] | None = None, timeout: float | None = None) -> Result:
    """One probe round trip for every fact the controls need (default: every control); raises SSHError when the
    host cannot be read. The Facts object is large: its Result is at DEBUG level, which `print_result` skips."""
    chosen = [as_control(c) for c in controls] if controls is not None else list(catalogue().values())
    return Result(host=task.host, result=_probe(task, connection(task), chosen, timeout), severity_level=logging.DEBUG)


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


def check_control(task: Task, control: str | Control, facts: Facts | None = None) -> Result:
    """Judge one control on gathered facts (pure; a crash in a check becomes an `error` finding). Without
    `facts`, gather them for this control first."""
    control = as_control(control)
    if facts is None:
        facts = task.run(task=gather_facts, controls=[control])[0].result
    try:
        finding = control.check(facts, params_for(task, control))
    except Exception as exc:  # a bug or an unforeseen host state must not lose the other controls
        finding = Finding("error", "", "", f"check crashed: {exc.__class__.__name__}: {exc}"[:300])
    return Result(host=task.host, result=finding)


def gather_facts_via_fallback(task: Task, controls: Sequence[Control], timeout: float | None = None) -> Result:
    """The probe over the fallback admin path (used when the login user lost sudo on purpose)."""
    alt = fallback_connection(task)
    if alt is None:
        raise SSHError("no fallback admin path configured")
    try:
        return Result(host=task.host, result=_probe(task, alt, controls, timeout), severity_level=logging.DEBUG)
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


def fix_control(task: Task, control: str | Control, facts: Facts | None = None, finding: Finding | None = None,
                ctx: RunContext | None = None, dry_run: bool | None = None) -> Result:
    """Plan the fix, then (unless dry run) apply it in one round trip; `changed` when it changed the host.

    Runbooks pass the facts, the check's finding and their RunContext. Called on its own (`nr.run(task=fix_control,
    control="core-rkt")`) it gathers and checks first, honours Nornir's dry run, and records the fix on the host
    under a run id of its own (in the outcome: `rollback_control` takes it). Verification is the caller's job.
    """
    control = as_control(control)
    if facts is None:
        facts = task.run(task=gather_facts, controls=[control])[0].result
    if finding is None:
        finding = task.run(task=check_control, control=control, facts=facts)[0].result
    if ctx is None:
        ctx = RunContext(run_id=new_run_id("nornir"), runbook="nornir", controls=[control],
                         dry_run=task.is_dry_run(dry_run))
    outcome = dataclasses.replace(_fix(task, control, facts, finding, ctx), run_id=ctx.run_id)
    return Result(host=task.host, result=outcome, changed=outcome.changed)


def _fix(task: Task, control: Control, facts: Facts, finding: Finding, ctx: RunContext) -> FixOutcome:
    params = params_for(task, control)
    if finding.status in ("pass", "not_applicable"):
        return FixOutcome("unchanged", "already compliant"
                      if finding.status == "pass" else "not applicable", False, {})
    if finding.status == "error":
        return FixOutcome("error", "not fixed: the check could not run", False, {})
    reason = ctx.waived(task.host.name, control.id)
    if reason:
        return FixOutcome("unchanged", f"not fixed: waived ({reason})", False, {})
    try:
        plan = control.plan_fix(facts, params)
    except Exception as exc:
        return FixOutcome("fix_failed", f"planning crashed: {exc}"[:300], False, {})
    evidence: dict[str, Any] = {"plan": plan.describe()}
    if plan.blocked:
        return FixOutcome("blocked", plan.blocked, False, evidence)
    if plan.empty:
        return FixOutcome("unchanged", "nothing to change", False, evidence)
    guard_note = ""
    if plan.lockout:
        verified, why = verify_fallback(task)
        evidence["fallback"] = why
        if not verified and not ctx.allow_lockout:
            return FixOutcome(
                "blocked", f"lockout guard: {plan.lockout}; {why}; pass --allow-lockout to apply anyway",
                False, evidence)
        guard_note = f" ({why})" if verified else " (--allow-lockout)"
    if ctx.dry_run:
        return FixOutcome(
            "would_fix", f"dry run: would apply {len(plan.steps)} change(s)" + (
                f" + {len(plan.post)} command(s)" if plan.post else "") + guard_note, False, evidence)
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
        return FixOutcome(
            "fix_failed", f"fix timed out after {conn.command_timeout:g}s (remote side killed)", True, evidence)
    if result.exit_status != 0:
        return FixOutcome(*apply_failure(result.exit_status, result.stderr),
                                                         evidence)
    if plan.deadman and deadman:
        ok, why = confirm_new_login(conn, ctx.run_id, control.id)
        evidence["deadman"] = why
        if not ok:
            return FixOutcome("fix_failed", why, True, evidence)
    if plan.lockout and guard_note.startswith(" (fallback"):
        verified, why = verify_fallback(task)
        evidence["fallback_after"] = why
        if not verified:
            return FixOutcome(
                "fix_failed", f"applied, but the fallback path no longer works: {why}", True, evidence)
    note = f"; {plan.note}" if plan.note else ""
    return FixOutcome("fixed", f"applied{guard_note}{note}", True, evidence)


def rollback_control(task: Task, control: str | Control, run_id: str) -> Result:
    """Run the rollback recorded on the host for this control in that run; `changed` when it restored something."""
    control = as_control(control)
    conn = connection(task)
    result = conn.run(fixes.rollback_command(run_id, control.id), sudo=True)
    outcome = fixes.parse_rollback(result.stdout, result.exit_status)
    detail = result.stderr.strip()[-300:]
    restored = outcome.status == "restored"
    message = outcome.message + (f": {detail}" if not restored and detail else "")
    return Result(host=task.host, result=FixOutcome(outcome.status, message, restored, {}, run_id), changed=restored)
