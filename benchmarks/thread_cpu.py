"""CPU (user+sys) per thread of a process tree, sampled until its root ends; thread names from `py-spy dump`.

    hardnir audit ... --runner dask & .venv/bin/python benchmarks/thread_cpu.py $! --out threads.json

Each thread's CPU is its last /proc/PID/task/TID/stat sample (every 0.5 s); threads that live less than that (one
paramiko transport per connection) show as "(transient)". Names come from `py-spy dump` every 8 s (`--py-spy`).
Prints per process its total and its threads' CPU grouped by name (digits folded), and writes the raw figures.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

PY_SPY = Path(sys.executable).parent / "py-spy"
THREAD_LINE = re.compile(r'Thread (\d+) \((?:\w+)\): "([^"]*)"')


def tree(pid: int) -> list[int]:
    found = [pid]
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError, ValueError):
                for child in (task / "children").read_text().split():
                    found += tree(int(child))
    return found


def thread_names(pid: int, py_spy: Path) -> dict[int, str]:
    """Python thread names by native id (none without py-spy: `pip install py-spy`, not a hardnir dependency)."""
    if not py_spy.exists():
        return {}
    out = subprocess.run([str(py_spy), "dump", "-p", str(pid)], capture_output=True, text=True).stdout
    return {int(m.group(1)): m.group(2) for m in THREAD_LINE.finditer(out)}


def sample(root: int, py_spy: Path) -> dict[str, list[tuple[str, float]]]:
    tick = os.sysconf("SC_CLK_TCK")
    cpu: dict[tuple[int, int], float] = {}
    names: dict[tuple[int, int], str] = {}
    labels: dict[int, str] = {}
    named = 0.0
    while Path(f"/proc/{root}").exists():
        pids = tree(root)
        for pid in pids:
            with contextlib.suppress(OSError):
                argv = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                if "spawn_main" in argv or pid not in labels:
                    labels[pid] = argv[:80]
                for task in Path(f"/proc/{pid}/task").iterdir():
                    with contextlib.suppress(OSError):
                        stat = (task / "stat").read_text().rsplit(")", 1)[1].split()
                        cpu[(pid, int(task.name))] = (int(stat[11]) + int(stat[12])) / tick
        if time.monotonic() - named > 8:
            named = time.monotonic()
            for pid in pids:
                names.update({(pid, tid): name for tid, name in thread_names(pid, py_spy).items()})
        time.sleep(0.5)
    found: dict[str, list[tuple[str, float]]] = {}
    for (pid, tid), seconds in cpu.items():
        found.setdefault(f"{labels.get(pid, '?')} [{pid}]", []).append((names.get((pid, tid), "(transient)"), seconds))
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pid", type=int)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--py-spy", type=Path, default=PY_SPY)
    args = parser.parse_args()
    found = sample(args.pid, args.py_spy)
    args.out.write_text(json.dumps(found, indent=1) + "\n")
    for process, threads in found.items():
        print(f"{process}: {sum(s for _, s in threads):.1f} s over {len(threads)} threads")
        grouped: dict[str, float] = {}
        for name, seconds in threads:
            key = re.sub(r"\d+", "N", name)
            grouped[key] = grouped.get(key, 0.0) + seconds
        for name, seconds in sorted(grouped.items(), key=lambda item: -item[1])[:12]:
            print(f"  {seconds:7.2f} s  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
