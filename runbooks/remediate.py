"""remediate: check -> fix (dry run, or apply) -> verify, per host; waves are scheduled by `hardnir.api`.

A fix is `fixed` only when the re-check after it passes. Fixes run in the controls' order (etcd before its
clients, sshd last). A dry run changes nothing and shows the exact plan of every fix in its evidence.
"""

from __future__ import annotations

import time

from nornir.core.exceptions import NornirSubTaskError
from nornir.core.task import Result, Task

from hardnir.control import Finding
from hardnir.fix_outcome import FixOutcome
from hardnir.nornir_tasks import (
    check_control,
    connection,
    fix_control,
    gather_facts,
    gather_facts_via_fallback,
    subtask_error,
)
from hardnir.run_context import RunContext, finish_host
from hardnir.runbook import Runbook


def remediate_host(task: Task, ctx: RunContext) -> Result:
    started = time.time()
    host = task.host.name
    try:
        facts = task.run(task=gather_facts, controls=ctx.controls)[0].result
    except NornirSubTaskError as exc:
        rows = ctx.error_rows(host, ["check", "fix", "verify"], subtask_error(exc), started)
        finish_host(task, ctx, rows)
        return Result(host=task.host, result=rows)
    fingerprint = connection(task).host_key_fingerprint
    findings: dict[str, Finding] = {}
    for control in ctx.controls:
        findings[control.id] = task.run(task=check_control, control=control, facts=facts)[0].result
    check_time = time.time() - started  # one probe serves every control's check
    check_rows = [ctx.finding_row(host, c, "check", findings[c.id], started, fingerprint, check_time)
                  for c in ctx.controls]

    outcomes: dict[str, FixOutcome] = {}
    fix_started: dict[str, float] = {}
    fix_time: dict[str, float] = {}
    for control in ctx.controls:
        fix_started[control.id] = time.time()
        try:
            outcomes[control.id] = task.run(
                task=fix_control, control=control, facts=facts, finding=findings[control.id], ctx=ctx
            )[0].result
        except NornirSubTaskError as exc:
            outcomes[control.id] = FixOutcome("error", f"fix could not run: {subtask_error(exc)}", False, {})
        fix_time[control.id] = time.time() - fix_started[control.id]

    verify_started = time.time()
    after: dict[str, Finding]
    if ctx.dry_run or not any(o.changed for o in outcomes.values()):
        note = "dry run: host not changed" if ctx.dry_run else "nothing changed: same as check"
        after = {
            cid: Finding(f.status, f.expected, f.observed, f"{note}; {f.message}", f.evidence)
            for cid, f in findings.items()
        }
    else:
        after = _reprobe(task, ctx, outcomes)
    verify_time = time.time() - verify_started

    fix_rows, verify_rows = [], []
    for control in ctx.controls:
        outcome = outcomes[control.id]
        status, message = outcome.status, outcome.message
        verdict = after[control.id]
        if status == "fixed" and verdict.status != "pass":
            status, message = "fix_failed", f"applied, but the re-check says {verdict.status}: {verdict.message}"
        fix_rows.append(ctx.row(host, control, "fix", status, fix_started[control.id], changed=outcome.changed,
                                expected=findings[control.id].expected, observed=findings[control.id].observed,
                                message=message, evidence=dict(outcome.evidence), fingerprint=fingerprint,
                                duration=fix_time[control.id]))
        verify_rows.append(ctx.finding_row(host, control, "verify", verdict, verify_started, fingerprint,
                                           verify_time))
    rows = check_rows + fix_rows + verify_rows
    finish_host(task, ctx, rows)
    return Result(host=task.host, result=rows, changed=any(o.changed for o in outcomes.values()))


def _reprobe(task: Task, ctx: RunContext, outcomes: dict[str, FixOutcome]) -> dict[str, Finding]:
    """One fresh probe after the fixes; over the fallback admin path if the login user lost its sudo."""
    try:
        facts = task.run(task=gather_facts, controls=ctx.controls)[0].result
    except NornirSubTaskError as exc:
        reason = subtask_error(exc)
        try:
            facts = task.run(task=gather_facts_via_fallback, controls=ctx.controls)[0].result
        except NornirSubTaskError:
            return {c.id: Finding("error", "", "", f"re-check failed: {reason}") for c in ctx.controls}
    return {c.id: task.run(task=check_control, control=c, facts=facts)[0].result for c in ctx.controls}


RUNBOOK = Runbook("remediate", phases=("check", "fix", "verify"), host_task=remediate_host,
                  judged_phases=("fix", "verify"), waves=True)
