"""rollback: undo what a remediation run changed, using the pre-state and backups it recorded on each host.

Controls are undone in reverse fix order (sshd first, etcd last: clients go back before the server). A control
that the run did not change reports `unchanged`; a second rollback also reports `unchanged`. One probe afterwards
gives `verify` rows: the state the host is in after the rollback.
"""

from __future__ import annotations

import time

from nornir.core.exceptions import NornirSubTaskError
from nornir.core.task import Result, Task

from hardnir.nornir_tasks import (
    check_control,
    connection,
    gather_facts,
    gather_login,
    rollback_control,
    subtask_error,
)
from hardnir.run_context import RunContext, finish_host
from hardnir.runbook import Runbook


def rollback_host(task: Task, ctx: RunContext, target_run: str) -> Result:
    started = time.time()
    host = task.host.name
    try:
        task.run(task=gather_login)
    except NornirSubTaskError as exc:
        rows = ctx.error_rows(host, ["rollback", "verify"], subtask_error(exc), started)
        finish_host(task, ctx, rows)
        return Result(host=task.host, result=rows)
    fingerprint = connection(task).host_key_fingerprint
    rows = []
    for control in reversed(list(ctx.controls)):
        t0 = time.time()
        try:
            outcome = task.run(task=rollback_control, control=control, run_id=target_run)[0].result
            rows.append(ctx.row(host, control, "rollback", outcome.status, t0, changed=outcome.changed,
                                message=outcome.message, fingerprint=fingerprint))
        except NornirSubTaskError as exc:
            rows.append(ctx.row(host, control, "rollback", "error", t0, message=subtask_error(exc),
                                fingerprint=fingerprint))
    verify_started = time.time()
    try:
        facts = task.run(task=gather_facts, controls=ctx.controls)[0].result
        findings = [(c, task.run(task=check_control, control=c, facts=facts)[0].result) for c in ctx.controls]
        took = time.time() - verify_started
        rows += [ctx.finding_row(host, c, "verify", f, verify_started, fingerprint, took) for c, f in findings]
    except NornirSubTaskError as exc:
        rows += ctx.error_rows(host, ["verify"], f"re-check failed: {subtask_error(exc)}", verify_started,
                               fingerprint=fingerprint)
    finish_host(task, ctx, rows)
    return Result(host=task.host, result=rows)


RUNBOOK = Runbook("rollback", phases=("rollback", "verify"), host_task=rollback_host, judged_phases=("rollback",),
                  undoes="remediate")
