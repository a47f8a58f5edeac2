"""What the probe costs on a host: wall time and CPU (user+sys) of the script alone, measured on lab hosts.

    sudo .venv/bin/python benchmarks/probe_cost.py [--hosts 4] [--runs 20]

Boots a small lab (holding the lab lock), waits for it to settle, then on each host runs hardnir's probe for all
eight controls (the exact script the audit sends, for that host's parameters) `--runs` times in a row inside one
shell that reads the clock and `times` around it; per host the mean of the runs, then the median over hosts.
The frozen reference script (`reference_probe.sh`) is measured the same way. Target (issue 10): at most 110 ms
wall and 130 ms CPU on an idle lab host. Writes results/probe_cost.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from measure import log

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
TARGET_WALL_MS, TARGET_CPU_MS = 110.0, 130.0
# N runs of "$1" in a row; prints the shell's children CPU (`times`, second line) and the wall time in ms.
TIMED = ('sh -c "$1" >/dev/null 2>&1; S=$(date +%s%N); i=0; while [ $i -lt $2 ]; do sh -c "$1" >/dev/null 2>&1; '
         'i=$((i+1)); done; E=$(date +%s%N); times; echo $(((E-S)/1000000))')


def _seconds(text: str) -> float:
    minutes, _, seconds = text.partition("m")
    return float(minutes) * 60 + float(seconds.rstrip("s"))


def cost(conn: object, script: str, runs: int) -> tuple[float, float]:
    """(wall ms, CPU ms) per run of `script` on the host behind `conn`, as root."""
    from hardnir.ssh import HardnirConnection

    assert isinstance(conn, HardnirConnection)
    result = conn.run(f"sh -c {shlex.quote(TIMED)} _ {shlex.quote(script)} {runs}", sudo=True, timeout=600)
    lines = result.stdout.strip().splitlines()
    user, system = lines[1].split()  # the children's line of `times`
    return int(lines[2]) / runs, (_seconds(user) + _seconds(system)) * 1000 / runs


def lab_hosts(hosts: int, seed: int, inventory: Path, settle: float) -> Iterator[tuple[str, Any, Any]]:
    """(name, Nornir host, open HardnirConnection) for each host of a freshly booted lab, after `settle` idle
    seconds; holds the lab lock throughout and takes the lab down at the end."""
    sys.path.insert(0, str(REPO))
    from run import boot_lab, lab_lock

    from hardnir.inventory import init_nornir
    from hardnir.lab import down
    from hardnir.ssh import HardnirConnection

    with lab_lock():
        lab = boot_lab(hosts, seed, "default", inventory)
        try:
            log(f"lab up; letting it settle for {settle:g} s; load {os.getloadavg()}")
            time.sleep(settle)
            nr = init_nornir(Path(lab.inventory_dir))
            for name, host in nr.inventory.hosts.items():
                if not str(host.hostname).startswith("198.19.1."):
                    continue
                conn = HardnirConnection()
                conn.open(str(host.hostname), host.username, None, host.port, None,
                          host.get_connection_parameters("hardnir").extras)
                try:
                    yield name, host, conn
                finally:
                    conn.close()
        finally:
            down()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=4)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--settle", type=float, default=10.0, help="seconds to let the lab go idle first")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(REPO))
    from run import WORK

    from hardnir import probe
    from hardnir.control import select
    from hardnir.hostdata import control_params

    reference = (HERE / "reference_probe.sh").read_text()
    rows: list[dict[str, object]] = []
    for name, host, conn in lab_hosts(args.hosts, args.seed, WORK / "probe-cost" / "inventory", args.settle):
        items = [i for c in select() for i in c.probe_items(control_params(host, c))]
        script = probe.build(items).script
        wall, cpu = cost(conn, script, args.runs)
        ref_wall, ref_cpu = cost(conn, reference, args.runs)
        rows.append({"host": name, "profile": host.data.get("lab_profile"), "wall_ms": round(wall, 1),
                     "cpu_ms": round(cpu, 1), "reference_wall_ms": round(ref_wall, 1),
                     "reference_cpu_ms": round(ref_cpu, 1)})
        log(f"{name}: probe {wall:.1f} ms wall, {cpu:.1f} ms CPU; reference {ref_wall:.1f} / {ref_cpu:.1f}")
    summary = {key: statistics.median(float(str(r[key])) for r in rows)
               for key in ("wall_ms", "cpu_ms", "reference_wall_ms", "reference_cpu_ms")}
    ok = summary["wall_ms"] <= TARGET_WALL_MS and summary["cpu_ms"] <= TARGET_CPU_MS
    text = (f"probe on {len(rows)} lab hosts, {args.runs} runs each (medians over hosts): "
            f"{summary['wall_ms']:.1f} ms wall, {summary['cpu_ms']:.1f} ms CPU "
            f"(target ≤ {TARGET_WALL_MS:g} / ≤ {TARGET_CPU_MS:g}: {'met' if ok else 'NOT met'}); "
            f"reference script {summary['reference_wall_ms']:.1f} ms wall, {summary['reference_cpu_ms']:.1f} ms CPU")
    print(text)
    out = HERE / "results" / "probe_cost.json"
    out.write_text(json.dumps({"summary": summary, "hosts": rows, "runs": args.runs, "text": text}, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
