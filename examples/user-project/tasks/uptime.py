"""A task of our own over hardnir's SSH connection plugin."""

from __future__ import annotations

from nornir.core.task import Result, Task

from hardnir.nornir_tasks import connection


def uptime(task: Task) -> Result:
    seconds = float(connection(task).run("cat /proc/uptime").stdout.split()[0])
    return Result(host=task.host, result=f"up {seconds / 3600:.1f} h")
