"""Where hardnir's client CPU goes above the paramiko floor's, on the simulated fleet: the two costs `fleet.py`'s
totals cannot separate.

    .venv/bin/python benchmarks/cpu_budget.py [--hosts 400] [--block 20] [--runs 5] [--base-port 12000]

1. **Fixed cost per run**: the CPU (user+sys, wait4) of a whole `hardnir audit` of ONE host against the floor
   (`floor_paramiko.py`) run on that one host: interpreter start, imports, inventory, run directory, report.
   `--runs` of each, alternating; medians. At N hosts it adds (fixed / N) to the CPU per host.
2. **The SSH layer per host**, in one thread of one process: the floor's `run_one` (connect, strict host-key check,
   auth, one exec, read) against hardnir's `HardnirConnection` doing the same (`open`, `run` of the same script with
   sudo, `close`), on the same simulated hosts, in blocks of `--block` hosts whose order alternates; CPU per host
   from `getrusage(RUSAGE_SELF)` (every thread of the process, so paramiko's transport threads count); medians.

What remains of hardnir's CPU per host is its own Python work per host, which `stage_cost.py` measures one stage at
a time, and what many worker threads add (`fleet.py`'s worker sweep). Prints a table; `--json FILE` also writes it.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import fleet  # noqa: E402  (benchmarks/ is not a package)
import floor_paramiko  # noqa: E402
import paramiko  # noqa: E402
from measure import log  # noqa: E402

WORK = HERE / ".work" / "cpu-budget"


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def fixed_cost(workdir: Path, runs: int) -> dict[str, float]:
    """Median CPU seconds of one whole run on one host: hardnir's CLI and the floor, alternating."""
    fleet.floor_targets(workdir, 1)
    cpu: dict[str, list[float]] = {"hardnir audit": [], "paramiko floor": []}
    for rnd in range(runs):
        order = ["paramiko floor", "hardnir audit"] if rnd % 2 == 0 else ["hardnir audit", "paramiko floor"]
        for tool in order:
            m = (fleet.run_floor(workdir, 1, rnd, 1) if tool == "paramiko floor"
                 else fleet.run_hardnir(workdir, 1, rnd, 1, extra=["-q"]))
            if not m.ok:
                raise SystemExit(f"{tool} failed on one host (exit {m.rc}); see the logs in {workdir}")
            cpu[tool].append(m.cpu_s)
    return {tool: statistics.median(values) for tool, values in cpu.items()}


def ssh_layer(workdir: Path, hosts: int, block: int) -> dict[str, float]:
    """Median CPU ms per host of one connection, one exec and one read: the floor's code against hardnir's."""
    from hardnir.ssh import HardnirConnection

    data = json.loads(fleet.floor_targets(workdir, hosts).read_text())
    script, targets = data["script"], data["targets"]
    key, known_hosts = str(workdir / "client_key"), str(workdir / "known_hosts")
    pkey = paramiko.PKey.from_path(key)
    known = floor_paramiko.load_known_hosts(known_hosts)
    extras = {"key_filename": key, "known_hosts": known_hosts}

    def floor_one(target: dict[str, Any]) -> None:
        name, status, _, err = floor_paramiko.run_one(target, script, "core", pkey, known, 60.0)
        if status != 0:
            raise SystemExit(f"floor: {name} answered {status}: {err}")

    def hardnir_one(target: dict[str, Any]) -> None:
        conn = HardnirConnection()
        conn.open(target["address"], "core", None, target["port"], None, extras)
        try:
            result = conn.run(script, sudo=True)
        finally:
            conn.close()
        if result.exit_status != 0:
            raise SystemExit(f"hardnir: {target['name']} answered {result.exit_status}: {result.stderr[:200]}")

    tools: dict[str, Callable[[dict[str, Any]], None]] = {"paramiko floor": floor_one, "hardnir ssh": hardnir_one}
    per_host: dict[str, list[float]] = {name: [] for name in tools}
    for index, start in enumerate(range(0, hosts, block)):
        chunk = targets[start:start + block]
        names = list(tools) if index % 2 == 0 else list(reversed(tools))
        for name in names:
            before = _cpu()
            for target in chunk:
                tools[name](target)
            per_host[name].append((_cpu() - before) * 1000 / len(chunk))
    return {name: statistics.median(values) for name, values in per_host.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=400, help="simulated hosts for the SSH-layer comparison")
    parser.add_argument("--block", type=int, default=20, help="hosts per alternating block")
    parser.add_argument("--runs", type=int, default=5, help="one-host runs of each tool for the fixed cost")
    parser.add_argument("--base-port", type=int, default=12000)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    fleet.raise_fd_limit()
    with fleet.simulated_fleet(args.hosts, [1, args.hosts], WORK, base_port=args.base_port) as workdir:
        log(f"fixed cost: {args.runs} one-host runs of each tool")
        fixed = fixed_cost(workdir, args.runs)
        log(f"SSH layer: {args.hosts} hosts in blocks of {args.block}")
        layer = ssh_layer(workdir, args.hosts, args.block)
    result = {"when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "hosts": args.hosts,
              "fixed_cpu_s": fixed, "ssh_cpu_ms_per_host": layer}
    lines = [f"CPU budget ({result['when']}; medians)", "",
             "| cost | paramiko floor | hardnir | hardnir - floor |", "|---|---|---|---|",
             f"| one whole run on 1 host (CPU s) | {fixed['paramiko floor']:.2f} | {fixed['hardnir audit']:.2f} | "
             f"{fixed['hardnir audit'] - fixed['paramiko floor']:.2f} |",
             f"| SSH layer per host, one thread (CPU ms) | {layer['paramiko floor']:.2f} | "
             f"{layer['hardnir ssh']:.2f} | {layer['hardnir ssh'] - layer['paramiko floor']:.2f} |"]
    print("\n".join(lines))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
