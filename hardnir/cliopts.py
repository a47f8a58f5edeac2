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
