"""quick-fix: check, then fix only the failing controls whose fix disrupts little, then re-check; a runbook built
from hardnir's Nornir tasks, which gets hardnir's run directory, progress, waivers, rows and exit code."""

from __future__ import annotations

import time

from nornir.core.exceptions import NornirSubTaskError
from nornir.core.task import Result, Task

from hardnir.fix_outcome import FixOutcome
from hardnir.nornir_tasks import check_control, fix_control, gather_facts, subtask_error
from hardnir.run_context import RunContext, finish_host
from hardnir.runbook import Runbook


def quick_fix_host(task: Task, ctx: RunContext) -> Result:
    started, host = time.time(), task.host.name
    try:
        facts = task.run(task=gather_facts, controls=ctx.controls)[0].result
    except NornirSubTaskError as exc:
        rows = ctx.error_rows(host, RUNBOOK.phases, subtask_error(exc), started)
        finish_host(task, ctx, rows)
        return Result(host=task.host, result=rows)
    rows, changed = [], False
    for control in ctx.controls:
        finding = task.run(task=check_control, control=control, facts=facts)[0].result
        rows.append(ctx.finding_row(host, control, "check", finding, started, ""))
        if control.meta.disruption == "low":
            outcome = task.run(task=fix_control, control=control, facts=facts, finding=finding, ctx=ctx)[0].result
        else:
            outcome = FixOutcome("unchanged", f"skipped: disruption {control.meta.disruption}", False, {})
        changed |= outcome.changed
        rows.append(ctx.row(host, control, "fix", outcome.status, started, changed=outcome.changed,
                            message=outcome.message))
    after = task.run(task=gather_facts, controls=ctx.controls)[0].result if changed else facts
    for control in ctx.controls:
        verdict = task.run(task=check_control, control=control, facts=after)[0].result
        rows.append(ctx.finding_row(host, control, "verify", verdict, started, ""))
    finish_host(task, ctx, rows)
    return Result(host=task.host, result=rows, changed=changed)


RUNBOOK = Runbook("quick-fix", phases=("check", "fix", "verify"), host_task=quick_fix_host,
                  judged_phases=("fix", "verify"))
