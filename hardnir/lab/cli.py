"""Command line of the lab: `hardnir lab up [--hosts N] [--seed S] [--dead N] [--inventory DIR] | down | status`."""

from __future__ import annotations

import argparse
import logging
import subprocess
import sys
import time
from pathlib import Path

from hardnir.lab.common import LabError, log
from hardnir.lab.lifecycle import down, status, up
from hardnir.lab.model import HostStatus
from hardnir.lab.profiles import LAB_PLATFORMS


def build_parser(prog: str = "hardnir lab") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Boot, inspect and remove the lab: CoreOS-like hosts in systemd-nspawn containers on "
        "198.19.0.0/16 (needs root).",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="{up,down,status}")
    p_up = sub.add_parser("up", help="boot the lab (tears down a running one first) and write its inventory")
    p_up.add_argument("--hosts", type=int, default=10, metavar="N", help="number of hosts (default 10)")
    p_up.add_argument("--seed", type=int, default=1, metavar="S",
                      help="seed that picks each host's starting state (default 1; host 1 is always vanilla)")
    p_up.add_argument("--dead", type=int, default=0, metavar="N",
                      help="extra inventory entries dead-01.. on 198.19.255.N with nothing behind them")
    p_up.add_argument("--platform", choices=LAB_PLATFORMS, default="mixed",
                      help="which platform the hosts imitate: coreos (Container Linux), flatcar, fcos (Fedora "
                      "CoreOS), or mixed (default: hosts 1-3 are vanilla coreos, flatcar, fcos; the rest drawn)")
    p_up.add_argument("--inventory", type=Path, default=Path("inventory/lab"), metavar="DIR",
                      help="where to write the Nornir inventory (default inventory/lab)")
    sub.add_parser("down", help="remove containers, overlays, namespaces, veths and the bridge")
    sub.add_parser("status", help="show each host: running, reachable")
    return parser


def main(argv: list[str]) -> int:
    """Run `hardnir lab ...`; returns the exit code (0 ok, 1 failure, 2 usage error)."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help, or a usage error argparse already printed
        return exc.code if isinstance(exc.code, int) else 2
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("lab: %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    try:
        if args.command == "up":
            started = time.monotonic()
            info = up(hosts=args.hosts, seed=args.seed, inventory_dir=args.inventory, dead_hosts=args.dead,
                      platform=args.platform)
            print(f"lab up: {len(info.hosts)} hosts in {time.monotonic() - started:.1f} s "
                  f"(boot {info.boot_seconds:.1f} s); inventory {info.inventory_dir}", file=sys.stderr)
            _print_table(status(), {h.name: h.profile for h in info.hosts})
        elif args.command == "down":
            down()
            print("lab down", file=sys.stderr)
        else:
            rows = status()
            if not rows:
                print("no lab is up", file=sys.stderr)
                return 1
            _print_table(rows, {})
            return 0 if all(r.running and r.reachable for r in rows) else 1
    except LabError as exc:
        message = str(exc)
        print(message if message.startswith("hardnir lab") else f"hardnir lab: {message}", file=sys.stderr)
        return 1
    except (OSError, subprocess.SubprocessError) as exc:
        print(f"hardnir lab: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("hardnir lab: interrupted", file=sys.stderr)
        return 1
    finally:
        log.removeHandler(handler)
    return 0


def _print_table(rows: list[HostStatus], profiles: dict[str, dict[str, str]]) -> None:
    from hardnir.lab.model import load_state

    state = load_state()
    if state is not None and not profiles:
        profiles = {h.name: h.profile for h in state.hosts}
    header = ("HOST", "ADDRESS", "RUNNING", "REACHABLE", "PROFILE")
    table = [header] + [
        (r.name, r.address, "yes" if r.running else "no", "yes" if r.reachable else "no",
         " ".join(f"{k}={v}" for k, v in profiles.get(r.name, {}).items()))
        for r in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(header) - 1)]
    for row in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False)) + "  " + row[-1])
