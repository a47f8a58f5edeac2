"""A runbook as data: its name, the phases of its rows and the Nornir task it runs on every host.

`hardnir.api.execute` gives every runbook the same machinery: selection and validation before any connection,
the run directory and run.json, progress (a Nornir processor), waivers, one row per host x control x phase (an
`error` row for a host the runner lost) and the exit code. The built-in runbooks are in `runbooks/`
(`hardnir.runbooks`); other packages add theirs through the `hardnir.runbooks` entry-point group.

A host task is `(task: Task, ctx: RunContext, **task_options) -> Result`; it ends with
`hardnir.run_context.finish_host(task, ctx, rows)`.
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hardnir.plugins import RUNBOOKS_GROUP, PluginError, load


@dataclass(frozen=True)
class Runbook:
    name: str
    phases: tuple[str, ...]  # the phases of its rows, in order (a lost host gets an `error` row in each)
    host_task: Callable[..., Any]
    judged_phases: tuple[str, ...] = ()  # the exit code is judged on these rows (default: all); errors always count
    waves: bool = False  # run the hosts in waves (wave_size, max_fail_percent; the first wave is the canary)
    undoes: str = ""  # it takes a run of this runbook (`--run RUN_DIR`) and passes its run id as `target_run`
    distribution: str = ""  # the package that installed it, and its version ('' for hardnir's own)
    version: str = ""


def judged_rows(rows: Iterable[Mapping[str, Any]], judged_phases: Sequence[str]) -> list[Mapping[str, Any]]:
    """The rows a run is judged on: those of `judged_phases` (every row when empty), and every error."""
    return [r for r in rows if r["status"] == "error" or not judged_phases or r["phase"] in judged_phases]


_REGISTRY: dict[str, Runbook] | None = None


def registry() -> dict[str, Runbook]:
    """hardnir's runbooks (every `RUNBOOK` in `hardnir.runbooks`), then those of installed plugins, by name."""
    global _REGISTRY
    if _REGISTRY is None:
        found: dict[str, Runbook] = {}
        for info in pkgutil.iter_modules(importlib.import_module("hardnir.runbooks").__path__):
            book = getattr(importlib.import_module(f"hardnir.runbooks.{info.name}"), "RUNBOOK", None)
            if isinstance(book, Runbook):
                found[book.name] = book
        for plugin in load(RUNBOOKS_GROUP):
            book = plugin.value
            if not isinstance(book, Runbook):
                raise PluginError(f"{plugin.where}: {RUNBOOKS_GROUP} must name a hardnir.runbook.Runbook")
            if book.name != plugin.name or book.name in found:
                raise PluginError(f"{plugin.where}: runbook {book.name!r} "
                                  + ("differs from the entry point name" if book.name != plugin.name
                                     else "is already taken"))
            found[book.name] = dataclasses.replace(book, distribution=plugin.distribution, version=plugin.version)
        _REGISTRY = found
    return _REGISTRY


def runbook_named(name: str) -> Runbook:
    books = registry()
    if name not in books:
        raise ValueError(f"unknown runbook {name!r} (known: {', '.join(books)})")
    return books[name]
