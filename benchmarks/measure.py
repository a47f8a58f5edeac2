"""Measuring one client run: wall time, CPU of the whole process tree (wait4) and peak RSS (wait4 and sampled).

Shared by `run.py` (the lab benchmark) and `fleet.py` (the simulated fleet).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- measuring one client run ---------------------------------------------------------------------------------


@dataclass
class Measurement:
    tool: str
    hosts: int
    round: int
    wall_s: float
    cpu_s: float  # user + sys of the child and every descendant it waited for
    user_s: float
    sys_s: float
    maxrss_mb: float  # largest single process of the client (wait4 ru_maxrss)
    tree_rss_mb: float  # peak of the summed RSS of the whole client process tree (sampled every 50 ms)
    rc: int
    ok: bool
    detail: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    # Peak of the tree's anonymous memory (RSS minus file-backed and shared pages, sampled): what the client
    # allocates, without the pages of the shared libraries it maps (libarrow alone is 48 MB), whose share of RSS
    # depends on the page cache (a library freshly written by pip sits in large folios: `import pyarrow` peaks at
    # 86 MB, and at 56 MB once the cache is dropped).
    anon_mb: float = 0.0


def _children(pid: int) -> list[int]:
    found: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for tid in tasks:
        with contextlib.suppress(OSError, ValueError):
            found.extend(int(c) for c in Path(f"/proc/{pid}/task/{tid}/children").read_text().split())
    return found


def _rss_kb(pid: int) -> tuple[int, int]:
    """(resident, resident anonymous) kB of one process, from statm (resident minus shared pages)."""
    try:
        fields = Path(f"/proc/{pid}/statm").read_text().split()
        page_kb = os.sysconf("SC_PAGE_SIZE") // 1024
        return int(fields[1]) * page_kb, (int(fields[1]) - int(fields[2])) * page_kb
    except (OSError, ValueError, IndexError):
        return 0, 0


class TreeSampler(threading.Thread):
    """Peak summed RSS of a process and all its descendants (shared pages counted once per process)."""

    def __init__(self, pid: int, interval: float = 0.05) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.interval = interval
        self.peak_kb = 0
        self.anon_peak_kb = 0
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set():
            total = anon = 0
            todo, seen = [self.pid], set()
            while todo:
                pid = todo.pop()
                if pid in seen:
                    continue
                seen.add(pid)
                rss, own = _rss_kb(pid)
                total, anon = total + rss, anon + own
                todo.extend(_children(pid))
            self.peak_kb = max(self.peak_kb, total)
            self.anon_peak_kb = max(self.anon_peak_kb, anon)
            self.stopped.wait(self.interval)

    def stop(self) -> int:
        self.stopped.set()
        self.join()
        return self.peak_kb


def measure(tool: str, hosts: int, rnd: int, argv: Sequence[str], *, output: Path, env: dict[str, str] | None = None,
            cwd: Path | None = None, timeout: float = 3600, stdin: str | None = None) -> Measurement:
    """Run argv once; wall time from just before the fork to the reaped exit, rusage from wait4."""
    output.parent.mkdir(parents=True, exist_ok=True)
    with open(output, "wb") as out:
        started = time.monotonic()
        proc = subprocess.Popen(list(argv), stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cwd,
                                stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                                start_new_session=True)
        sampler = TreeSampler(proc.pid)
        sampler.start()
        killer = threading.Timer(timeout, lambda: os.killpg(proc.pid, signal.SIGKILL))
        killer.start()
        if stdin is not None:
            assert proc.stdin is not None
            proc.stdin.write(stdin.encode())
            proc.stdin.close()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.monotonic() - started
        killer.cancel()
        tree_kb = sampler.stop()
    rc = os.waitstatus_to_exitcode(status)
    proc.returncode = rc
    return Measurement(
        tool=tool, hosts=hosts, round=rnd, wall_s=round(wall, 3),
        cpu_s=round(usage.ru_utime + usage.ru_stime, 3), user_s=round(usage.ru_utime, 3),
        sys_s=round(usage.ru_stime, 3), maxrss_mb=round(usage.ru_maxrss / 1024, 1),
        tree_rss_mb=round(max(tree_kb, usage.ru_maxrss) / 1024, 1), rc=rc, ok=rc == 0,
        anon_mb=round(sampler.anon_peak_kb / 1024, 1),
    )
