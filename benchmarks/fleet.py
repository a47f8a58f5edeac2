"""hardnir at fleet scale, against a paramiko floor, on a simulated fleet of up to 10,000 SSH hosts (issue 10).

    .venv/bin/python benchmarks/fleet.py                                  # the full run (about 30-40 min)
    .venv/bin/python benchmarks/fleet.py --sizes 300 --rounds 1 --quick   # a smoke run (about 2 min)

One simulated fleet (`simfleet.py`: asyncssh on 127.0.0.1 ports, recorded lab facts) serves every measurement.
For each size, paired rounds alternate the order of `hardnir audit` (the CLI, a subprocess) and the paramiko floor
(`floor_paramiko.py`: known_hosts parsed once, one connection, one exec, one read per host) on the same hosts, both
reading the same probe output. Per run: wall time, client CPU (user+sys from wait4), peak RSS. Then: a worker-count
sweep, `hardnir remediate` of the whole non-compliant fleet at 1,000 hosts (every host's rows checked), a fault run
(refused, hung, dropped and slow hosts: every host still gets its rows), and 10 consecutive 10,000-host audits in
one Python process through the API (RSS after each). Medians of the rounds. Writes `results/fleet.md` and
`results/fleet.json` and prints the table with each target met or not.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

from measure import Measurement, log, measure

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
PYTHON = Path(sys.executable)
HARDNIR = PYTHON.parent / "hardnir"
WORK = HERE / ".work" / "fleet"
RESULTS = HERE / "results"
TARGETS = {
    "wall_ratio": 1.5,  # hardnir audit wall / floor wall, at 1,000 and 10,000 hosts
    "cpu_ms_per_host": 8.0,
    "rss_base_mb": 150.0,
    "rss_kb_per_host": 50.0,
    "linearity": 1.2,  # cost per host at 10,000 / at 1,000
    "memory_growth_pct": 5.0,  # RSS after the 10th API audit vs after the 2nd
}


def raise_fd_limit() -> int:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


@contextmanager
def simulated_fleet(hosts: int, sizes: list[int], workdir: Path, extra: list[str] | None = None,
                    base_port: int = 20000) -> Iterator[Path]:
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    argv = [str(PYTHON), str(HERE / "simfleet.py"), "--hosts", str(hosts), "--workdir", str(workdir),
            "--base-port", str(base_port), "--inventory-sizes", ",".join(str(s) for s in sizes), *(extra or [])]
    log(f"starting the simulated fleet: {hosts} hosts {' '.join(extra or [])}")
    started = time.monotonic()
    with open(workdir / "simfleet.log", "w") as err:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=err, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line.startswith("READY"):
            raise SystemExit(f"simfleet did not start: {line!r}; see {workdir / 'simfleet.log'}")
        log(f"simulated fleet ready in {time.monotonic() - started:.1f} s ({line.strip()})")
        yield workdir
    finally:
        proc.terminate()
        proc.wait(30)


def floor_targets(workdir: Path, size: int) -> Path:
    """The floor's targets: the same hosts, and the probe script hardnir sends (text made once, here)."""
    sys.path.insert(0, str(REPO))
    from hardnir import probe
    from hardnir.control import catalogue

    items = [i for c in catalogue().values() for i in c.probe_items(c.params({}, "127.0.0.1"))]
    hosts = json.loads((workdir / "hosts.json").read_text())[:size]
    path = workdir / f"targets-{size}.json"
    path.write_text(json.dumps({"script": probe.build(items).script, "targets": [
        {"name": f"sim-{h['index'] + 1:05d}", "address": "127.0.0.1", "port": h["port"]} for h in hosts]}))
    return path


def run_floor(workdir: Path, size: int, rnd: int, threads: int) -> Measurement:
    argv = [str(PYTHON), str(HERE / "floor_paramiko.py"), "--targets", str(workdir / f"targets-{size}.json"),
            "--key", str(workdir / "client_key"), "--known-hosts", str(workdir / "known_hosts"),
            "--threads", str(threads)]
    m = measure("paramiko floor", size, rnd, argv, output=workdir / f"floor-{size}-{rnd}-{threads}.log")
    m.extra["threads"] = threads
    return m


def run_hardnir(workdir: Path, size: int, rnd: int, workers: int, runbook: str = "audit",
                extra: list[str] | None = None, inventory: Path | None = None) -> Measurement:
    out = workdir / f"run-{runbook}-{size}-{rnd}-{workers}"
    shutil.rmtree(out, ignore_errors=True)
    inv = inventory or workdir / f"inventory-{size}"
    argv = [str(HARDNIR), runbook, "-i", str(inv), "--workers", str(workers), "--out", str(out), *(extra or [])]
    m = measure(f"hardnir {runbook}", size, rnd, argv, output=workdir / f"{out.name}.log")
    m.extra["workers"] = workers
    meta_path = out / "run.json"
    if meta_path.exists():
        meta = json.loads(meta_path.read_text())
        m.extra["rows"] = meta.get("row_count")
        m.extra["wall_time_s"] = meta.get("wall_time_s")
        m.extra["hosts_with_rows"] = len(meta.get("hosts", []))
        m.extra["statuses"] = status_counts(out)
    m.ok = meta_path.exists() and m.rc in (0, 1, 3, 4)
    return m


def status_counts(run_dir: Path) -> dict[str, int]:
    import csv

    counts: dict[str, int] = {}
    with open(run_dir / "results.csv", newline="") as fh:
        for row in csv.DictReader(fh):
            key = f"{row['phase']}:{row['status']}"
            counts[key] = counts.get(key, 0) + 1
    return counts


def run_controls(run_dir: Path) -> int:
    """How many controls the run judged (run.json names them)."""
    return len(json.loads((run_dir / "run.json").read_text())["controls"])


def hosts_with_all_rows(run_dir: Path, phases: int) -> tuple[int, int]:
    """(hosts with every control's row in every phase, hosts in the run)."""
    import csv

    per_host: dict[str, int] = {}
    with open(run_dir / "results.csv", newline="") as fh:
        for row in csv.DictReader(fh):
            per_host[row["host"]] = per_host.get(row["host"], 0) + 1
    meta = json.loads((run_dir / "run.json").read_text())
    complete = sum(1 for h in meta["hosts"] if per_host.get(h, 0) == phases * run_controls(run_dir))
    return complete, len(meta["hosts"])


def memory_runs(workdir: Path, size: int, runs: int, workers: int) -> list[float]:
    """RSS (MB) after each of `runs` consecutive audits in one Python process (the API), after a gc."""
    code = f"""
import gc, json, resource, sys
sys.setrecursionlimit(10000)
import hardnir
out = []
for i in range({runs}):
    frame = hardnir.audit({str(workdir / f'inventory-{size}')!r}, workers={workers},
                          out={str(workdir / 'memory-run')!r} + f"-{{i}}")
    del frame
    gc.collect()
    with open("/proc/self/statm") as fh:
        out.append(int(fh.read().split()[1]) * resource.getpagesize() / 2**20)
    print(json.dumps(out[-1]), file=sys.stderr, flush=True)
print(json.dumps(out))
"""
    log(f"memory: {runs} consecutive {size}-host audits through the API in one process")
    # stderr passes through: the RSS after each audit shows in the log as the runs go.
    proc = subprocess.run([str(PYTHON), "-c", code], stdout=subprocess.PIPE, text=True, cwd=workdir, check=False)
    if proc.returncode != 0:
        log(f"memory run failed with exit status {proc.returncode} (its stderr is above)")
        return []
    for i in range(runs):
        shutil.rmtree(workdir / f"memory-run-{i}", ignore_errors=True)
    values: list[float] = json.loads(proc.stdout.strip().splitlines()[-1])
    return values


def med(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def per_size(runs: list[Measurement], size: int, tool: str) -> dict[str, float]:
    mine = [r for r in runs if r.hosts == size and r.tool == tool]
    return {
        "wall_s": med([r.wall_s for r in mine]),
        "cpu_ms_per_host": med([r.cpu_s * 1000 / size for r in mine]),
        "rss_mb": med([r.maxrss_mb for r in mine]),
        "anon_mb": med([r.anon_mb for r in mine]),
        "rounds": len(mine),
    }


def verdict(ok: bool) -> str:
    return "yes" if ok else "**no**"


def render(summary: dict[str, Any]) -> str:
    t = TARGETS
    lines = ["# hardnir on a simulated fleet", "",
             f"Recorded {summary['when']} on {summary['machine']}; {summary['rounds']} paired rounds per size, "
             f"medians; hardnir `--workers {summary['workers']}`, floor `--threads {summary['workers']}`.", ""]
    if summary["sizes"]:
        lines += ["| hosts | tool | wall s | client CPU ms/host | peak RSS MB | peak anonymous MB |",
                  "|---|---|---|---|---|---|"]
    for size, tools in summary["sizes"].items():
        for tool, v in tools.items():
            lines.append(f"| {size} | {tool} | {v['wall_s']:.2f} | {v['cpu_ms_per_host']:.2f} | {v['rss_mb']:.0f} | "
                         f"{v.get('anon_mb', float('nan')):.0f} |")
    lines += ["", "| target | measured | met |", "|---|---|---|"]
    lines += [f"| {row['target']} | {row['measured']} | {verdict(row['ok'])} |" for row in summary["verdicts"]]
    if summary.get("sweep"):
        lines += ["", "Worker sweep (hardnir audit, medians):", "",
                  "| hosts | workers | wall s | client CPU ms/host | peak RSS MB |", "|---|---|---|---|---|"]
        lines += [f"| {s['hosts']} | {s['workers']} | {s['wall_s']:.2f} | {s['cpu_ms_per_host']:.2f} | "
                  f"{s['rss_mb']:.0f} |" for s in summary["sweep"]]
    for key in ("remediate", "faults"):
        if summary.get(key):
            lines += ["", f"{key}: {json.dumps(summary[key])}"]
    if summary.get("memory_mb"):
        runs, size = len(summary["memory_mb"]), summary.get("memory_size")
        lines += ["", f"RSS after each of {runs} consecutive {size}-host API audits (MB): "
                  + ", ".join(f"{v:.0f}" for v in summary["memory_mb"])]
    lines += ["", f"Targets: wall ≤ {t['wall_ratio']}x floor; CPU ≤ {t['cpu_ms_per_host']} ms/host; RSS ≤ "
              f"{t['rss_base_mb']:.0f} MB + {t['rss_kb_per_host']:.0f} kB/host; per-host cost at the largest size ≤ "
              f"{t['linearity']}x at 1,000; memory growth ≤ {t['memory_growth_pct']}%."]
    return "\n".join(lines) + "\n"


def judge(summary: dict[str, Any], sizes: list[int]) -> list[dict[str, Any]]:
    t = TARGETS
    rows: list[dict[str, Any]] = []
    for size in sizes:
        h, f = summary["sizes"][size]["hardnir audit"], summary["sizes"][size]["paramiko floor"]
        ratio = h["wall_s"] / f["wall_s"]
        rows.append({"target": f"{size} hosts: wall ≤ {t['wall_ratio']}x floor", "measured": f"{ratio:.2f}x",
                     "ok": ratio <= t["wall_ratio"]})
        cpu, floor_cpu = h["cpu_ms_per_host"], f["cpu_ms_per_host"]
        why = ", itself over the target" if floor_cpu > t["cpu_ms_per_host"] else ""
        rows.append({"target": f"{size} hosts: client CPU ≤ {t['cpu_ms_per_host']} ms/host",
                     "measured": f"{cpu:.2f} ms ({cpu / floor_cpu:.2f}x the floor's {floor_cpu:.2f} ms{why})",
                     "ok": cpu <= t["cpu_ms_per_host"]})
        limit = t["rss_base_mb"] + t["rss_kb_per_host"] * size / 1024
        rows.append({"target": f"{size} hosts: peak RSS ≤ {limit:.0f} MB", "measured": f"{h['rss_mb']:.0f} MB",
                     "ok": h["rss_mb"] <= limit})
    if len(sizes) > 1 and min(sizes) >= 1000:
        small, big = summary["sizes"][min(sizes)]["hardnir audit"], summary["sizes"][max(sizes)]["hardnir audit"]
        wall_small, wall_big = small["wall_s"] / min(sizes), big["wall_s"] / max(sizes)
        lin_cpu = big["cpu_ms_per_host"] / small["cpu_ms_per_host"]
        lin_wall = wall_big / wall_small
        rows.append({"target": f"per-host cost at {max(sizes)} ≤ {t['linearity']}x at {min(sizes)}",
                     "measured": f"CPU {lin_cpu:.2f}x, wall {lin_wall:.2f}x",
                     "ok": lin_cpu <= t["linearity"] and lin_wall <= t["linearity"]})
    rem = summary.get("remediate")
    if rem:
        rows.append({"target": f"remediate {rem['hosts']} non-compliant hosts: every host's rows",
                     "measured": f"{rem['complete']}/{rem['hosts']} hosts complete, {rem['wall_s']:.1f} s",
                     "ok": rem["complete"] == rem["hosts"]})
    faults = summary.get("faults")
    if faults:
        rows.append({"target": f"faults at {faults['hosts']} hosts: every host has its rows",
                     "measured": f"{faults['complete']}/{faults['hosts']} hosts, {faults['errors']} error hosts, "
                                 f"{faults['wall_s']:.1f} s", "ok": faults["complete"] == faults["hosts"]})
    memory = summary.get("memory_mb")
    if memory and len(memory) >= 3:
        growth = (memory[-1] - memory[1]) / memory[1] * 100
        rows.append({"target": f"{len(memory)} consecutive {summary.get('memory_size', '?')}-host API audits: RSS "
                               "does not grow",
                     "measured": f"{memory[1]:.0f} → {memory[-1]:.0f} MB ({growth:+.1f}%)",
                     "ok": growth <= t["memory_growth_pct"]})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,3000,10000")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rounds-large", type=int, default=0, metavar="N",
                        help="rounds at 10,000 hosts or more (default: --rounds)")
    parser.add_argument("--workers", type=int, default=0, help="hardnir workers and floor threads (default: "
                        "hardnir's own default)")
    parser.add_argument("--sweep", default="50,100,200", help="worker counts to compare at --sweep-size hosts")
    parser.add_argument("--sweep-size", type=int, default=3000)
    parser.add_argument("--memory-runs", type=int, default=10)
    parser.add_argument("--memory-size", type=int, default=10000, help="hosts per audit in the memory runs")
    parser.add_argument("--quick", action="store_true", help="skip the sweep, remediate, faults and memory runs")
    parser.add_argument("--memory-only", action="store_true",
                        help="only the memory runs (--memory-runs audits of --memory-size hosts); writes "
                             "results/fleet-memory.md unless --out is given")
    parser.add_argument("--base-port", type=int, default=20000, help="first loopback port of the simulated fleet")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    sizes = sorted(int(s) for s in args.sizes.split(","))
    out: Path = args.out or RESULTS / ("fleet-memory" if args.memory_only else "fleet")
    sys.path.insert(0, str(REPO))
    from hardnir.inventory import DEFAULT_WORKERS

    workers = args.workers or DEFAULT_WORKERS
    limit = raise_fd_limit()
    biggest = max(sizes)
    if biggest + 1000 > limit:
        raise SystemExit(f"{biggest} hosts need more open files than the limit {limit}")
    runs: list[Measurement] = []
    summary: dict[str, Any] = {"when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                               "machine": f"{os.cpu_count()} CPUs, Python {platform.python_version()}",
                               "rounds": args.rounds, "workers": workers, "sizes": {}}
    if args.memory_only:
        if args.memory_size + 1000 > limit:
            raise SystemExit(f"{args.memory_size} hosts need more open files than the limit {limit}")
        summary["sizes"] = {}
        with simulated_fleet(args.memory_size, [args.memory_size], WORK.with_name("fleet-memory"),
                             base_port=args.base_port) as workdir:
            summary["memory_size"] = args.memory_size
            summary["memory_mb"] = memory_runs(workdir, args.memory_size, args.memory_runs, workers)
        return finish(summary, [], runs, out)
    sweep = [int(w) for w in args.sweep.split(",") if w] if not args.quick else []
    inv_sizes = sorted({*sizes, 1000, args.sweep_size, args.memory_size} if not args.quick else set(sizes))
    with simulated_fleet(biggest, [s for s in inv_sizes if s <= biggest], WORK, base_port=args.base_port) as workdir:
        for size in sizes:
            floor_targets(workdir, size)
            rounds = args.rounds_large if size >= 10000 and args.rounds_large else args.rounds
            for rnd in range(rounds):
                order = ["floor", "hardnir"] if rnd % 2 == 0 else ["hardnir", "floor"]
                for tool in order:
                    m = (run_floor(workdir, size, rnd, workers) if tool == "floor"
                         else run_hardnir(workdir, size, rnd, workers))
                    runs.append(m)
                    log(f"{size} hosts round {rnd + 1}: {m.tool} {m.wall_s:.2f} s wall, "
                        f"{m.cpu_s * 1000 / size:.2f} ms CPU/host, {m.maxrss_mb:.0f} MB, rc {m.rc}")
            summary["sizes"][size] = {tool: per_size(runs, size, tool) for tool in ("hardnir audit", "paramiko floor")}
        if sweep and args.sweep_size <= biggest:
            summary["sweep"] = []
            for w in sweep:
                ms = [run_hardnir(workdir, args.sweep_size, rnd, w, extra=["-q"]) for rnd in range(1)]
                runs.extend(ms)
                summary["sweep"].append({"hosts": args.sweep_size, "workers": w,
                                         "wall_s": med([m.wall_s for m in ms]),
                                         "cpu_ms_per_host": med([m.cpu_s * 1000 / args.sweep_size for m in ms]),
                                         "rss_mb": med([m.maxrss_mb for m in ms])})
                log(f"sweep {w} workers: {summary['sweep'][-1]}")
        if not args.quick and biggest >= 1000:
            m = run_hardnir(workdir, 1000, 0, workers, "remediate")
            complete, total = hosts_with_all_rows(workdir / f"run-remediate-1000-0-{workers}", 3)
            summary["remediate"] = {"hosts": total, "complete": complete, "wall_s": m.wall_s, "rc": m.rc,
                                    "statuses": m.extra.get("statuses")}
            runs.append(m)
            rb = run_hardnir(workdir, 1000, 0, workers, "rollback",
                             ["--run", str(workdir / f"run-remediate-1000-0-{workers}")])
            summary["remediate"]["rollback_wall_s"] = rb.wall_s
            log(f"remediate: {summary['remediate']}")
        if not args.quick and args.memory_runs and args.memory_size <= biggest:
            summary["memory_size"] = args.memory_size
            summary["memory_mb"] = memory_runs(workdir, args.memory_size, args.memory_runs, workers)
    if not args.quick:
        with simulated_fleet(1000, [1000], WORK.with_name("fleet-faults"), base_port=args.base_port,
                             extra=["--refuse", "0.01", "--hang", "0.01", "--drop", "0.01", "--slow", "0.01",
                                    "--slow-seconds", "3"]) as faulty:
            m = run_hardnir(faulty, 1000, 0, workers)
            run_dir = faulty / f"run-audit-1000-0-{workers}"
            complete, total = hosts_with_all_rows(run_dir, 1)
            errors = sum(v for k, v in (m.extra.get("statuses") or {}).items() if k.endswith(":error"))
            summary["faults"] = {"hosts": total, "complete": complete, "errors": errors // run_controls(run_dir),
                                 "wall_s": m.wall_s, "rc": m.rc}
            log(f"faults: {summary['faults']}")
    return finish(summary, [s for s in sizes if s >= 1000] or sizes, runs, out)


def finish(summary: dict[str, Any], judged_sizes: list[int], runs: list[Measurement], out: Path) -> int:
    """Judge the targets, write OUT.md and OUT.json, print the table; exit status 1 when a target is missed."""
    summary["verdicts"] = judge(summary, judged_sizes)
    text = render(summary)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".md").write_text(text)
    out.with_suffix(".json").write_text(json.dumps({"summary": summary, "runs": [asdict(r) for r in runs]},
                                                   indent=2, default=str))
    print(text)
    return 0 if all(v["ok"] for v in summary["verdicts"]) else 1

if __name__ == "__main__":
    sys.exit(main())
