"""Threaded against Dask (a LocalCluster of 1 and of 2 worker processes) on one simulated fleet, in one run (issue 11).

    .venv/bin/python benchmarks/dask_bench.py                        # 10,000 hosts (about 20-30 min)
    .venv/bin/python benchmarks/dask_bench.py --hosts 1000           # a smoke run

The simulated fleet (`simfleet.py`) listens on ports 25000-30999 at most (6,000 listeners); a larger inventory
cycles over them (host 6,001 is served by the port of host 1, and so on), which an audit cannot tell apart. Each
`hardnir audit` is the CLI in a subprocess; per run: wall time, CPU of the whole process tree (the driver and the
worker processes it reaps: wait4), CPU per host, and the peak RSS of every process of the tree (sampled every
100 ms). Writes `results/dask.md` and `results/dask.json`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
PYTHON = Path(sys.executable)
HARDNIR = PYTHON.parent / "hardnir"
WORK = HERE / ".work" / "dask"
RESULTS = HERE / "results"
BASE_PORT = 25000
MAX_LISTENERS = 6000  # ports 25000-30999
TARGET_CPU_RATIO = 1.15  # Dask with one worker process: CPU per host <= 1.15x the threaded runner's
RUNS = [("threaded", []), ("dask, 1 worker process", ["--runner", "dask", "--dask-workers", "1"]),
        ("dask, 2 worker processes", ["--runner", "dask", "--dask-workers", "2"])]


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _children(pid: int) -> list[int]:
    found: list[int] = []
    with contextlib.suppress(OSError):
        for tid in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError, ValueError):
                found.extend(int(c) for c in Path(f"/proc/{pid}/task/{tid}/children").read_text().split())
    return found


def _label(pid: int) -> str:
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return "?"
    text = " ".join(a.decode(errors="replace") for a in argv if a)
    if "spawn_main" in text:
        return "dask worker"
    if "resource_tracker" in text:
        return "resource tracker"
    return "driver" if "hardnir" in text else text[:40]


class ProcessPeaks(threading.Thread):
    """Peak RSS of each process of a tree (by pid, with what it is)."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.peaks: dict[int, tuple[str, int]] = {}
        self.stopped = threading.Event()

    def run(self) -> None:
        page_kb = os.sysconf("SC_PAGE_SIZE") // 1024
        while not self.stopped.is_set():
            todo, seen = [self.pid], set()
            while todo:
                pid = todo.pop()
                if pid in seen:
                    continue
                seen.add(pid)
                with contextlib.suppress(OSError, ValueError, IndexError):
                    rss = int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * page_kb
                    label, peak = self.peaks.get(pid, ("", 0))
                    self.peaks[pid] = (label or _label(pid), max(peak, rss))
                todo.extend(_children(pid))
            self.stopped.wait(0.1)


def measure(name: str, argv: list[str], hosts: int, log_file: Path) -> dict[str, Any]:
    with open(log_file, "wb") as out:
        started = time.monotonic()
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
        peaks = ProcessPeaks(proc.pid)
        peaks.start()
        killer = threading.Timer(7200, lambda: os.killpg(proc.pid, signal.SIGKILL))
        killer.start()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.monotonic() - started
        killer.cancel()
        peaks.stopped.set()
        peaks.join()
    cpu = usage.ru_utime + usage.ru_stime
    processes = sorted(((label, round(kb / 1024, 1)) for label, kb in peaks.peaks.values()
                        if label in ("driver", "dask worker")), key=lambda p: (p[0] != "driver", -p[1]))
    return {"runner": name, "hosts": hosts, "rc": os.waitstatus_to_exitcode(status), "wall_s": round(wall, 1),
            "cpu_s": round(cpu, 1), "cpu_ms_per_host": round(1000 * cpu / hosts, 2),
            "peak_rss_mb": processes}


def start_fleet(hosts: int, workdir: Path) -> subprocess.Popen[str]:
    listeners = min(hosts, MAX_LISTENERS)
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    argv = [str(PYTHON), str(HERE / "simfleet.py"), "--hosts", str(listeners), "--workdir", str(workdir),
            "--base-port", str(BASE_PORT), "--inventory-sizes", str(listeners)]
    log(f"starting the simulated fleet: {listeners} listeners on ports {BASE_PORT}-{BASE_PORT + listeners - 1}")
    with open(workdir / "simfleet.log", "w") as err:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=err, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("READY"):
        proc.kill()
        raise SystemExit(f"simfleet did not start: {line!r}")
    log(f"simulated fleet ready ({line.strip()})")
    return proc


def inventory(workdir: Path, hosts: int) -> Path:
    """`hosts` inventory entries cycling over the fleet's listeners (same defaults: key, known_hosts, timeouts)."""
    listeners = min(hosts, MAX_LISTENERS)
    src = workdir / f"inventory-{listeners}"
    dst = workdir / f"inventory-{hosts}-cycled"
    dst.mkdir(exist_ok=True)
    (dst / "hosts.yaml").write_text(yaml.safe_dump(
        {f"sim-{i + 1:05d}": {"hostname": "127.0.0.1", "port": BASE_PORT + i % listeners} for i in range(hosts)}))
    for name in ("groups.yaml", "defaults.yaml"):
        (dst / name).write_text((src / name).read_text())
    return dst


def write(results: list[dict[str, Any]], hosts: int, busy: str) -> Path:
    threaded = next(r for r in results if r["runner"] == "threaded")
    one = next(r for r in results if r["runner"].startswith("dask, 1"))
    ratio = one["cpu_ms_per_host"] / threaded["cpu_ms_per_host"]
    lines = [
        "# Threaded vs Dask on the simulated fleet", "",
        f"`benchmarks/dask_bench.py --hosts {hosts}`, one run, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
        f"{os.cpu_count()} cores, Python {platform.python_version()}. {busy}", "",
        "The simulated fleet (one asyncssh process, on the same 2 cores) answers every probe; the client runs "
        "`hardnir audit --workers 50` (50 parallel hosts per process or per shard). CPU is user+sys of the "
        "driver and of the worker processes it reaps (wait4); RSS is each process's peak, sampled every 100 ms.", "",
        "| runner | hosts | wall s | CPU s | CPU ms/host | peak RSS MB per process | exit |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        rss = ", ".join(f"{label} {mb:g}" for label, mb in r["peak_rss_mb"])
        lines.append(f"| {r['runner']} | {r['hosts']} | {r['wall_s']} | {r['cpu_s']} | {r['cpu_ms_per_host']} | "
                     f"{rss} | {r['rc']} |")
    verdict = "met" if ratio <= TARGET_CPU_RATIO else "**not met**"
    lines += ["", f"Target: Dask with one worker process costs <= {TARGET_CPU_RATIO}x the threaded runner's CPU per "
              f"host: {ratio:.2f}x, {verdict}.", ""]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "dask.json").write_text(json.dumps({"hosts": hosts, "runs": results, "cpu_ratio_dask1": ratio},
                                                  indent=2) + "\n")
    path = RESULTS / "dask.md"
    path.write_text("\n".join(lines))
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=10000)
    parser.add_argument("--note", default="", help="a line about the machine (e.g. that it was busy)")
    args = parser.parse_args()
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    fleet = start_fleet(args.hosts, WORK)
    results = []
    try:
        inv = inventory(WORK, args.hosts)
        for name, extra in RUNS:
            out = WORK / f"run-{len(results)}"
            shutil.rmtree(out, ignore_errors=True)
            argv = [str(HARDNIR), "audit", "-i", str(inv), "--workers", "50", "-q", "--out", str(out), *extra]
            log(f"{name}: {args.hosts} hosts")
            result = measure(name, argv, args.hosts, WORK / f"run-{len(results)}.log")
            meta = json.loads((out / "run.json").read_text()) if (out / "run.json").exists() else {}
            result["hosts_in_run"] = len(meta.get("hosts", []))
            log(json.dumps(result))
            results.append(result)
    finally:
        fleet.terminate()
        fleet.wait(60)
    print(write(results, args.hosts, args.note).read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
