"""Threaded against Dask (a LocalCluster of 1 and of 2 worker processes) on one simulated fleet, in one run (issue 11).

    .venv/bin/python benchmarks/dask_bench.py                        # 10,000 hosts (about 20-30 min)
    .venv/bin/python benchmarks/dask_bench.py --hosts 1000           # a smoke run
    .venv/bin/python benchmarks/dask_bench.py --hosts 2000 --base-port 32000 --listeners 700 \
        --runners threaded,dask-1 --repeat 3 --code OLD_TREE       # paired runs: this tree and OLD_TREE alternate

The simulated fleet (`simfleet.py`) listens on ports 25000-30999 at most (6,000 listeners; `--base-port` and
`--listeners` move and shrink that range); a larger inventory cycles over them (host 6,001 is served by the port of
host 1, and so on), which an audit cannot tell apart. Each `hardnir audit` is the CLI in a subprocess; per run: wall
time, CPU of the whole process tree (the driver and the worker processes it reaps: wait4), CPU per host, and per
process (driver, dask worker) its CPU (user+sys, its last /proc sample before it ended) and its peak RSS (sampled
every 100 ms). `--code DIR` runs a second hardnir source tree (e.g. `git archive` of an older commit) in turns with
this one, on the same fleet (PYTHONPATH, so the worker processes load it too). Writes `results/dask.md` and
`results/dask.json` (or `--name`).
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
RUNS = {"threaded": ("threaded", []),
        "dask-1": ("dask, 1 worker process", ["--runner", "dask", "--dask-workers", "1"]),
        "dask-2": ("dask, 2 worker processes", ["--runner", "dask", "--dask-workers", "2"])}
THIS_CODE = "this tree"


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


class ProcessStats(threading.Thread):
    """Per process of a tree (by pid, with what it is): peak RSS and CPU (user+sys) at its last sample."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.peaks: dict[int, tuple[str, int]] = {}
        self.cpu: dict[int, float] = {}
        self.stopped = threading.Event()

    def run(self) -> None:
        page_kb = os.sysconf("SC_PAGE_SIZE") // 1024
        tick = os.sysconf("SC_CLK_TCK")
        while not self.stopped.is_set():
            todo, seen = [self.pid], set()
            while todo:
                pid = todo.pop()
                if pid in seen:
                    continue
                seen.add(pid)
                with contextlib.suppress(OSError, ValueError, IndexError):
                    rss = int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * page_kb
                    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                    self.cpu[pid] = (int(stat[11]) + int(stat[12])) / tick  # utime, stime (fields 14, 15)
                    label, peak = self.peaks.get(pid, ("", 0))
                    if pid != self.pid and label != "dask worker":  # a child first seen between fork and exec
                        label = ""
                    self.peaks[pid] = (label or _label(pid), max(peak, rss))
                todo.extend(_children(pid))
            self.stopped.wait(0.1)

    def processes(self) -> list[dict[str, Any]]:
        """The driver and the dask workers: label, CPU s, peak RSS MB (the driver first, then by RSS)."""
        found = [{"process": label, "cpu_s": round(self.cpu.get(pid, 0.0), 1), "peak_rss_mb": round(kb / 1024, 1)}
                 for pid, (label, kb) in self.peaks.items() if label in ("driver", "dask worker")]
        return sorted(found, key=lambda p: (p["process"] != "driver", -p["peak_rss_mb"]))


def measure(name: str, argv: list[str], hosts: int, log_file: Path, env: dict[str, str]) -> dict[str, Any]:
    with open(log_file, "wb") as out:
        load = os.getloadavg()[0]
        started = time.monotonic()
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, env=env)
        stats = ProcessStats(proc.pid)
        stats.start()
        killer = threading.Timer(7200, lambda: os.killpg(proc.pid, signal.SIGKILL))
        killer.start()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.monotonic() - started
        killer.cancel()
        stats.stopped.set()
        stats.join()
    cpu = usage.ru_utime + usage.ru_stime
    processes = stats.processes()
    return {"runner": name, "hosts": hosts, "rc": os.waitstatus_to_exitcode(status), "wall_s": round(wall, 1),
            "cpu_s": round(cpu, 1), "cpu_ms_per_host": round(1000 * cpu / hosts, 2),
            "peak_rss_mb": [(p["process"], p["peak_rss_mb"]) for p in processes], "processes": processes,
            "load_before": round(load, 2), "load_after": round(os.getloadavg()[0], 2)}


def start_fleet(hosts: int, workdir: Path, base_port: int, max_listeners: int) -> subprocess.Popen[str]:
    listeners = min(hosts, max_listeners)
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    argv = [str(PYTHON), str(HERE / "simfleet.py"), "--hosts", str(listeners), "--workdir", str(workdir),
            "--base-port", str(base_port), "--inventory-sizes", str(listeners)]
    log(f"starting the simulated fleet: {listeners} listeners on ports {base_port}-{base_port + listeners - 1}")
    with open(workdir / "simfleet.log", "w") as err:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=err, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("READY"):
        proc.kill()
        raise SystemExit(f"simfleet did not start: {line!r}")
    log(f"simulated fleet ready ({line.strip()})")
    return proc


def inventory(workdir: Path, hosts: int, base_port: int, max_listeners: int) -> Path:
    """`hosts` inventory entries cycling over the fleet's listeners (same defaults: key, known_hosts, timeouts)."""
    listeners = min(hosts, max_listeners)
    src = workdir / f"inventory-{listeners}"
    dst = workdir / f"inventory-{hosts}-cycled"
    dst.mkdir(exist_ok=True)
    (dst / "hosts.yaml").write_text(yaml.safe_dump(
        {f"sim-{i + 1:05d}": {"hostname": "127.0.0.1", "port": base_port + i % listeners} for i in range(hosts)}))
    for name in ("groups.yaml", "defaults.yaml"):
        (dst / name).write_text((src / name).read_text())
    return dst


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def medians(results: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, float]]:
    """Per (code, runner): the median CPU ms/host, wall s and per-process CPU s over the repeats."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in results:
        groups.setdefault((r["code"], r["runner"]), []).append(r)
    found = {}
    for key, runs in groups.items():
        found[key] = {"cpu_ms_per_host": round(_median([r["cpu_ms_per_host"] for r in runs]), 2),
                      "wall_s": round(_median([r["wall_s"] for r in runs]), 1), "runs": len(runs)}
        for label in ("driver", "dask worker"):
            cpus = [sum(p["cpu_s"] for p in r["processes"] if p["process"] == label) for r in runs]
            found[key][f"{label} cpu_s"] = round(_median(cpus), 1)
    return found


def write(results: list[dict[str, Any]], hosts: int, busy: str, name: str) -> Path:
    codes = list(dict.fromkeys(r["code"] for r in results))
    lines = [
        "# Threaded vs Dask on the simulated fleet", "",
        f"`benchmarks/dask_bench.py --hosts {hosts}`, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
        f"{os.cpu_count()} cores, Python {platform.python_version()}. {busy}", "",
        "The simulated fleet (one asyncssh process, on the same 2 cores) answers every probe; the client runs "
        "`hardnir audit --workers 50` (50 parallel hosts per process or per shard). CPU is user+sys of the "
        "driver and of the worker processes it reaps (wait4); per process, its CPU at its last 100 ms sample and "
        "its peak RSS. Load is the 1-minute load average before and after the run.", "",
        "| code | runner | hosts | wall s | CPU s | CPU ms/host | CPU s per process | peak RSS MB per process | "
        "load | exit |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        cpu = ", ".join(f"{p['process']} {p['cpu_s']:g}" for p in r["processes"])
        rss = ", ".join(f"{p['process']} {p['peak_rss_mb']:g}" for p in r["processes"])
        lines.append(f"| {r['code']} | {r['runner']} | {r['hosts']} | {r['wall_s']} | {r['cpu_s']} | "
                     f"{r['cpu_ms_per_host']} | {cpu} | {rss} | {r['load_before']}-{r['load_after']} | {r['rc']} |")
    summary = medians(results)
    lines += ["", "Medians:", "", "| code | runner | runs | wall s | CPU ms/host | driver CPU s | worker CPU s |",
              "|---|---|---|---|---|---|---|"]
    for (code, runner), m in summary.items():
        lines.append(f"| {code} | {runner} | {m['runs']} | {m['wall_s']} | {m['cpu_ms_per_host']} | "
                     f"{m['driver cpu_s']} | {m['dask worker cpu_s']} |")
    ratios: dict[str, float] = {}
    for code in codes:
        threaded = summary.get((code, RUNS["threaded"][0]))
        one = summary.get((code, RUNS["dask-1"][0]))
        if threaded and one:
            ratios[code] = one["cpu_ms_per_host"] / threaded["cpu_ms_per_host"]
            verdict = "met" if ratios[code] <= TARGET_CPU_RATIO else "**not met**"
            lines += ["", f"Target ({code}): Dask with one worker process costs <= {TARGET_CPU_RATIO}x the threaded "
                      f"runner's CPU per host: {ratios[code]:.2f}x (medians), {verdict}."]
    lines.append("")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(
        {"hosts": hosts, "runs": results, "cpu_ratio_dask1": ratios}, indent=2) + "\n")
    path = RESULTS / f"{name}.md"
    path.write_text("\n".join(lines))
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=10000)
    parser.add_argument("--note", default="", help="a line about the machine (e.g. that it was busy)")
    parser.add_argument("--base-port", type=int, default=BASE_PORT, help="first loopback port of the simulated fleet")
    parser.add_argument("--listeners", type=int, default=MAX_LISTENERS, help="at most this many fleet ports")
    parser.add_argument("--runners", default=",".join(RUNS), help=f"which of {', '.join(RUNS)}, in this order")
    parser.add_argument("--repeat", type=int, default=1, help="rounds of all runners (and codes), alternating")
    parser.add_argument("--code", type=Path, help="a second hardnir source tree, run in turns with this one")
    parser.add_argument("--workdir", type=Path, default=WORK)
    parser.add_argument("--name", default="dask", help="results/NAME.md and results/NAME.json")
    args = parser.parse_args()
    runners = [RUNS[r] for r in args.runners.split(",") if r]
    codes = [(THIS_CODE, dict(os.environ))]
    if args.code:
        other = {**os.environ, "PYTHONPATH": str(args.code.resolve())}
        codes.append((f"{args.code.name}", other))
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    fleet = start_fleet(args.hosts, args.workdir, args.base_port, args.listeners)
    results: list[dict[str, Any]] = []
    try:
        inv = inventory(args.workdir, args.hosts, args.base_port, args.listeners)
        for round_ in range(args.repeat):
            for name, extra in runners:
                order = codes if round_ % 2 == 0 else codes[::-1]  # alternate which code goes first
                for code, env in order:
                    out = args.workdir / f"run-{len(results)}"
                    shutil.rmtree(out, ignore_errors=True)
                    argv = [str(HARDNIR), "audit", "-i", str(inv), "--workers", "50", "-q", "--out", str(out), *extra]
                    log(f"{name} ({code}): {args.hosts} hosts")
                    result = measure(name, argv, args.hosts, args.workdir / f"run-{len(results)}.log", env)
                    meta = json.loads((out / "run.json").read_text()) if (out / "run.json").exists() else {}
                    result["hosts_in_run"] = len(meta.get("hosts", []))
                    result["code"] = code
                    log(json.dumps(result))
                    results.append(result)
                    shutil.rmtree(out, ignore_errors=True)
    finally:
        fleet.terminate()
        fleet.wait(60)
    print(write(results, args.hosts, args.note, args.name).read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
