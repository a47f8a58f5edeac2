"""Argument types of the command line: range-checked numbers and non-empty name lists (argparse names the option
in its error, and exits 2)."""

from __future__ import annotations

import argparse
from collections.abc import Callable

WORKERS_MAX = 1000


def names(value: str) -> str:
    """A comma-separated list with at least one name: `--hosts ""` must not select the whole fleet."""
    if not [part for part in value.split(",") if part.strip()]:
        raise argparse.ArgumentTypeError("must name at least one (an empty value would select everything)")
    return value


def bounded(kind: type[int] | type[float], low: float, high: float | None = None) -> Callable[[str], float]:
    """A number in [low, high]; the error says the range."""
    span = f"from {low:g} to {high:g}" if high is not None else f"of at least {low:g}"

    def parse(value: str) -> float:
        try:
            number = kind(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{value!r} is not a number; use a number {span}") from None
        if number < low or (high is not None and number > high):
            raise argparse.ArgumentTypeError(f"{value} is out of range; use a number {span}")
        return number

    parse.__name__ = kind.__name__  # argparse names the type in some messages
    return parse


def add_inventory_options(p: argparse.ArgumentParser) -> None:
    """Where the hosts come from: a SimpleInventory folder or a Nornir config file (any inventory plugin)."""
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("-i", "--inventory", metavar="INVENTORY_DIR",
                        help="Nornir SimpleInventory folder (hosts.yaml, groups.yaml, defaults.yaml)")
    source.add_argument("--config", metavar="NORNIR_CONFIG",
                        help="a Nornir config file: any inventory plugin, transform function and runner options")


def add_runner_options(p: argparse.ArgumentParser) -> None:
    """--runner, --scheduler, --shard-by (audit, remediate, rollback); see hardnir.dask_runner."""
    p.add_argument("--runner", choices=("threaded", "dask"), default="threaded",
                   help="threaded (default): one process; dask: shards on Dask distributed (pip install "
                   "'hardnir[dask]'), a local cluster unless --scheduler is given")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="Dask scheduler to use and leave running, e.g. tcp://10.0.0.5:8786 (default: "
                   "$DASK_SCHEDULER_ADDRESS, else a local cluster)")
    p.add_argument("--shard-by", metavar="KEY",
                   help="keep hosts together in one shard by group-name prefix or host data key (e.g. site-)")
    p.add_argument("--dask-workers", type=bounded(int, 1, WORKERS_MAX), metavar="N",
                   help="worker processes of the local Dask cluster (default: one per core)")
