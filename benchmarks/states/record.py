"""Record benchmarks/states/remediated.yaml again, with today's probe: the facts of a remediated lab host.

    sudo .venv/bin/python benchmarks/states/record.py [--settle S]

Holding /var/lock/hardnir-lab.lock, this boots a one-host lab in the all-vanilla state (every control fails),
lets it settle, runs `hardnir remediate --exclude core-wheel` on it (core-wheel would take sudo from the login
user), gathers every control's facts with `hardnir facts`, writes them, and takes the lab down. The simulated
fleet (`simfleet.py`) answers the probe of a host it has seen a fix script on with these facts.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
STATE = HERE / "remediated.yaml"
HEADER = ("# Recorded with `hardnir facts` from lab host {host} (one-host lab, profile {profile}) after "
          "`hardnir remediate --exclude core-wheel`.\n# The simulated fleet answers remediated hosts' probes with "
          "these facts.\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--settle", type=float, default=20.0, help="seconds to let the lab settle first")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(REPO / "benchmarks"))
    sys.path.insert(0, str(REPO / "tests" / "fixtures" / "facts"))
    from record import dump_items
    from run import WORK, boot_lab, lab_lock, log, wait_for_foreign_lab

    from hardnir import api
    from hardnir.lab import down

    work = WORK / "record-remediated"
    with lab_lock():
        wait_for_foreign_lab(600)
        lab = boot_lab(1, 1, "vanilla", work / "inventory")
        try:
            log(f"lab up; letting it settle for {args.settle:g} s")
            time.sleep(args.settle)
            run = work / f"remediate-{time.strftime('%Y%m%dT%H%M%S')}"
            outcome = api.execute("remediate", lab.inventory_dir, exclude="core-wheel", out=run)
            left = {str(r["control"]) for r in outcome.rows
                    if r["phase"] == "verify" and r["status"] not in ("pass", "not_applicable")}
            if left:
                raise SystemExit(f"remediation left {', '.join(sorted(left))} not passing; see {run}")
            host = lab.hosts[0]
            items = api.collect_facts(lab.inventory_dir, hosts=[host.name])[host.name]
            if "error" in items:
                raise SystemExit(f"{host.name}: {items['error']}")
            STATE.write_text(HEADER.format(host=host.name, profile=host.profile) + dump_items(items))
            log(f"{STATE}: {len(items)} items from {host.name}")
        finally:
            down()
    return 0


if __name__ == "__main__":
    sys.exit(main())
