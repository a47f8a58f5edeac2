"""Where a run's hosts come from: a SimpleInventory folder, a Nornir config file, or an initialised Nornir object.

A folder is validated and loaded by `hardnir.inventory` (one-line errors naming the file and line). A config file
goes through Nornir's own `InitNornir`, so any inventory plugin, transform function and runner option works. A
Nornir object is used as it is: an `nr.filter(...)` is the selection. Whatever the source, hardnir then checks
every host itself: parameters (a one-line error before any connection) and addresses (a host without a usable
hostname or port is not connected to and gets `error` rows).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hardnir.inventory import InventoryError, digest, files_of, filter_hosts, init_nornir, quiet_nornir_log


@dataclass
class Fleet:
    nr: Any  # the selected hosts that can be connected to
    source: str  # what run.json names as the inventory
    digest: str
    files: Mapping[str, str] = field(default_factory=dict)  # file names -> paths, for messages
    unusable: dict[str, str] = field(default_factory=dict)  # selected host -> why it cannot be connected to
    host_names: list[str] = field(default_factory=list)  # every selected host, unusable ones included, in order


def is_nornir(value: object) -> bool:
    return hasattr(value, "inventory") and hasattr(value, "run") and hasattr(value, "filter")


@dataclass(frozen=True)
class Opened:
    """A whole inventory, loaded, and how to name it."""

    nr: Any
    source: str  # what run.json names as the inventory
    digest: str
    files: Mapping[str, str]  # file names -> paths, for messages (a SimpleInventory folder only)
    args: str  # the command-line words that name it again, for the fixes hardnir suggests ('' for a Nornir object)


def open_inventory(inventory: Any = None, *, config: str | Path | None = None,
                   workers: int | None = None) -> Opened:
    """Exactly one of a folder (or a config file given as `inventory`), a config file, a Nornir object, loaded."""
    if (inventory is None) == (config is None):
        raise InventoryError("give an inventory folder (-i), a Nornir config file (--config) or a Nornir object")
    if is_nornir(inventory):
        full = inventory if workers is None else inventory.with_runner(_threaded(workers))
        opened = Opened(full, f"nornir object ({_plugin_of(full)})", _inventory_digest(full), {}, "")
    else:
        path = Path(config if config is not None else inventory)
        args = f"--config {path}" if config is not None else f"-i {path}"
        if config is not None or path.is_file():
            full = _from_config(path, workers)
            opened = Opened(full, str(path.resolve()), _inventory_digest(full), {}, args)
        else:
            opened = Opened(init_nornir(path, workers), str(path.resolve()), digest(path), files_of(path), args)
    if not logging.getLogger("nornir").handlers:  # no logging configured: no tracebacks on stderr either
        quiet_nornir_log()
    return opened


def open_fleet(inventory: Any = None, *, config: str | Path | None = None, workers: int | None = None,
               hosts: Sequence[str] | None = None, groups: Sequence[str] | None = None) -> tuple[Fleet, Any]:
    """(the selected fleet, the whole inventory's Nornir) from exactly one of a folder, a config file, a Nornir."""
    opened = open_inventory(inventory, config=config, workers=workers)
    nr = filter_hosts(opened.nr, hosts, groups)
    names = list(nr.inventory.hosts)
    unusable = {name: why for name, host in nr.inventory.hosts.items() if (why := address_problem(host))}
    if unusable:
        nr = nr.filter(filter_func=lambda h: h.name not in unusable)
    return Fleet(nr, opened.source, opened.digest, opened.files, unusable, names), opened.nr


def address_problem(host: Any) -> str:
    """Why hardnir cannot connect to this host, as its inventory gives it ('' when it can try)."""
    if not str(host.hostname or "").strip():
        return "inventory: the host has no hostname"
    port = host.port
    if port is not None and (not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536):
        return f"inventory: port must be a number 1-65535, not {port!r}"
    return ""


def _from_config(path: Path, workers: int | None) -> Any:
    if not path.is_file():
        raise InventoryError(f"--config {path}: Nornir config file not found")
    from nornir import InitNornir

    options: dict[str, Any] = {"runner": _runner_options(path, workers)} if workers else {}
    try:
        return InitNornir(config_file=str(path), **options)
    except Exception as exc:  # nornir and its plugins raise many types; the user needs one line
        raise InventoryError(f"{path}: {exc.__class__.__name__}: {exc}".splitlines()[0]) from None


def _runner_options(path: Path, workers: int) -> dict[str, Any]:
    """The config file's runner with `num_workers` set (a runner of another kind keeps its own options)."""
    import yaml

    try:
        runner = dict((yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("runner") or {})
    except (yaml.YAMLError, OSError, AttributeError) as exc:
        raise InventoryError(f"{path}: not a Nornir config file ({exc.__class__.__name__})") from None
    plugin = runner.get("plugin", "threaded")
    return {"plugin": plugin, "options": {**(runner.get("options") or {}), "num_workers": workers}}


def _threaded(workers: int) -> Any:
    from nornir.plugins.runners import ThreadedRunner

    return ThreadedRunner(num_workers=workers)


def _plugin_of(nr: Any) -> str:
    return str(getattr(getattr(getattr(nr, "config", None), "inventory", None), "plugin", "") or "inventory")


def _inventory_digest(nr: Any) -> str:
    """A digest of the inventory as Nornir loaded it (hosts, groups, defaults, data), so a run names what it saw."""
    text = json.dumps(nr.inventory.dict(), sort_keys=True, default=str)
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()
