"""audit: read-only. One probe per host, then every selected control judged on the gathered facts."""

from __future__ import annotations

import time

from nornir.core.exceptions import NornirSubTaskError
from nornir.core.task import Result, Task

from hardnir.nornir_tasks import check_control, connection, gather_facts, subtask_error
from hardnir.run_context import RunContext, finish_host
from hardnir.runbook import Runbook


def audit_host(task: Task, ctx: RunContext) -> Result:
    started = time.time()
    try:
        facts = task.run(task=gather_facts, controls=ctx.controls)[0].result
    except NornirSubTaskError as exc:
        rows = ctx.error_rows(task.host.name, ["check"], subtask_error(exc), started)
        finish_host(task, ctx, rows)
        return Result(host=task.host, result=rows)
    fingerprint = connection(task).host_key_fingerprint
    findings = [(c, task.run(task=check_control, control=c, facts=facts)[0].result) for c in ctx.controls]
    took = time.time() - started  # one probe serves every control
    rows = [ctx.finding_row(task.host.name, c, "check", f, started, fingerprint, took) for c, f in findings]
    finish_host(task, ctx, rows)
    return Result(host=task.host, result=rows)


RUNBOOK = Runbook("audit", phases=("check",), host_task=audit_host)
