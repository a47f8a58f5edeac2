"""A progress line on stderr for long runs: hosts done, failing, unreachable, elapsed time.

`Progress` is a Nornir processor: it counts a host when the runbook's task instance on it completes (the rows the
host task returns, or a failed Result for a host the task could not run on). A host is failing as the exit code
judges it: on the runbook's `judged_phases` (remediate: fix and verify, not the findings it fixed). Users attach
their own processors (nornir_rich's, or any other) next to it through `processors=`.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any, TextIO

from nornir.core.inventory import Host
from nornir.core.task import AggregatedResult, MultiResult, Task

from hardnir.runbook import judged_rows


class Progress:
    def __init__(self, label: str, total: int, stream: TextIO | None = None,
                 judged_phases: Sequence[str] = ()) -> None:
        self.label = label
        self.total = total
        self.judged_phases = judged_phases  # the runbook's (`Runbook.judged_phases`); empty: every row
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.done = self.failing = self.unreachable = 0
        self.seen: set[str] = set()
        self.started = time.monotonic()
        self.lock = threading.Lock()
        self.last_print = 0.0
        self._print(force=True)

    def update(self, host: str, rows: Sequence[Mapping[str, Any]]) -> None:
        """Count a finished host once, whoever reports it first: the processor (threaded hosts) or the run's
        `on_host_done` (hosts recorded by the driver: Dask shards, hosts a stopped wave skipped)."""
        with self.lock:
            if host in self.seen:
                return
            self.seen.add(host)
            self.done += 1
            statuses = {r["status"] for r in judged_rows(rows, self.judged_phases)}
            if "error" in statuses:
                self.unreachable += 1
            elif statuses & {"fail", "fix_failed", "blocked", "rollback_failed"}:
                self.failing += 1
            self._print()

    # The Nornir processor protocol: only a top-level task instance finishing on a host counts.
    def task_started(self, task: Task) -> None:
        return None

    def task_completed(self, task: Task, result: AggregatedResult) -> None:
        return None

    def task_instance_started(self, task: Task, host: Host) -> None:
        return None

    def task_instance_completed(self, task: Task, host: Host, result: MultiResult) -> None:
        rows = result[0].result if result and isinstance(result[0].result, list) else []
        self.update(host.name, [{"status": "error"}] if result.failed else rows)

    def subtask_instance_started(self, task: Task, host: Host) -> None:
        return None

    def subtask_instance_completed(self, task: Task, host: Host, result: MultiResult) -> None:
        return None

    def _line(self) -> str:
        width = 24
        filled = int(width * self.done / self.total) if self.total else width
        bar = "#" * filled + "." * (width - filled)
        return (f"{self.label} [{bar}] {self.done}/{self.total} hosts  failing {self.failing}  "
                f"unreachable/error {self.unreachable}  {time.monotonic() - self.started:.1f}s")

    def _print(self, force: bool = False) -> None:
        now = time.monotonic()
        if self.tty:
            if force or now - self.last_print > 0.1 or self.done == self.total:
                self.stream.write("\r" + self._line())
                self.stream.flush()
                self.last_print = now
        elif force or now - self.last_print > 5 or self.done == self.total:
            self.stream.write(self._line() + "\n")
            self.stream.flush()
            self.last_print = now

    def close(self) -> None:
        with self.lock:
            if self.tty:
                self.stream.write("\r" + self._line() + "\n")
                self.stream.flush()


def factory(label: str, stream: TextIO | None = None, judged_phases: Sequence[str] = ()) -> Any:
    """`progress(total)` for `hardnir.api.execute` and the setup commands; a runbook's progress gets its
    `judged_phases`."""
    return lambda total: Progress(label, total, stream, judged_phases)
