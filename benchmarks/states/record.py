"""Record benchmarks/states/remediated-<os>.yaml again, with today's probe: the facts of remediated lab hosts.

    sudo .venv/bin/python benchmarks/states/record.py [--settle S]

Holding /var/lock/hardnir-lab.lock, this boots a three-host mixed lab, whose hosts 1-3 are the all-vanilla
Container Linux, Flatcar and Fedora CoreOS hosts (every control that applies fails), lets it settle, runs
`hardnir remediate --exclude core-wheel` on it (core-wheel would take sudo from the login user) with the lab's
inventory (its TLS inputs included, so the etcd, fleet, locksmith and Zincati TLS fixes are applied), gathers
every control's facts with `hardnir facts`, writes one file per platform and takes the lab down. The simulated
fleet (`simfleet.py`) answers the probe of a host it has seen a fix script on with the file of that host's
platform.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
HEADER = ("# Recorded with `hardnir facts` from lab host {host} (three-host mixed lab, profile {profile}) after "
          "`hardnir remediate --exclude core-wheel`.\n# The simulated fleet answers remediated {os} hosts' probes "
          "with these facts.\n")
LAB_HOSTS = 3  # hosts 1-3 of a mixed lab: all-vanilla coreos, flatcar, fcos (hardnir.lab.profiles.draw_profiles)


def state_file(os_name: str) -> Path:
    return HERE / f"remediated-{os_name}.yaml"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--settle", type=float, default=20.0, help="seconds to let the lab settle first")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(REPO / "benchmarks"))
    sys.path.insert(0, str(REPO / "tests" / "fixtures" / "facts"))
    from record import dump_items
    from run import WORK, lab_lock, log, wait_for_foreign_lab

    from hardnir import api
    from hardnir.lab import down, up
    from hardnir.lab.profiles import PLATFORMS, VANILLA, _normalise

    work = WORK / "record-remediated"
    with lab_lock():
        wait_for_foreign_lab(600)
        lab = up(hosts=LAB_HOSTS, seed=1, inventory_dir=work / "inventory", platform="mixed")
        try:
            for host, os_name in zip(lab.hosts, PLATFORMS, strict=True):
                vanilla = dict(VANILLA, os=os_name)
                _normalise(vanilla)
                if host.profile != vanilla:
                    raise SystemExit(f"{host.name}: profile {host.profile}, expected the all-vanilla {vanilla}")
            log(f"lab up; letting it settle for {args.settle:g} s")
            time.sleep(args.settle)
            run = work / f"remediate-{time.strftime('%Y%m%dT%H%M%S')}"
            outcome = api.execute("remediate", lab.inventory_dir, exclude="core-wheel", out=run)
            left = {f"{r['host']} {r['control']}" for r in outcome.rows
                    if r["phase"] == "verify" and r["status"] not in ("pass", "not_applicable")}
            if left:
                raise SystemExit(f"remediation left {', '.join(sorted(left))} not passing; see {run}")
            facts = api.collect_facts(lab.inventory_dir, hosts=[h.name for h in lab.hosts])
            for host in lab.hosts:
                items = facts[host.name]
                if "error" in items:
                    raise SystemExit(f"{host.name}: {items['error']}")
                os_name = host.profile["os"]
                path = state_file(os_name)
                path.write_text(HEADER.format(host=host.name, profile=host.profile, os=os_name) + dump_items(items))
                log(f"{path}: {len(items)} items from {host.name}")
        finally:
            down()
    return 0


if __name__ == "__main__":
    sys.exit(main())
