"""Load a Nornir SimpleInventory folder, after checking it ourselves so that mistakes get one clear line.

Nornir's SimpleInventory turns a YAML error or a missing group into a traceback, and silently keeps the last of
two hosts with the same name. We validate first: YAML syntax (with the line), duplicate names, unknown groups,
missing hostnames, bad ports; then build Nornir with the threaded runner.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from hardnir.ssh import CONNECTION_NAME

DEFAULT_WORKERS = 50


class InventoryError(ValueError):
    """A broken inventory: the message is one line that names the file and the problem."""


class _UniqueKeyLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """libyaml's parser when present (10x faster at 10,000 hosts), refusing duplicate names."""


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate name {key!r}", key_node.start_mark
            )
        seen.add(key)
    mapping: dict[Any, Any] = loader.construct_mapping(node, deep=deep)
    return mapping


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _load_yaml(path: Path, required: bool) -> dict[str, Any]:
    if not path.exists():
        if required:
            raise InventoryError(f"{path}: file not found")
        return {}
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader)  # noqa: S506
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" line {mark.line + 1}" if mark else ""
        raise InventoryError(f"{path}:{where}: {exc.problem or exc.context}") from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise InventoryError(f"{path}: not valid YAML ({exc.__class__.__name__})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise InventoryError(f"{path}: expected a mapping of names, got {type(data).__name__}")
    return data


def validate(inventory_dir: Path) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Check the three files; returns (hosts, groups, defaults) as parsed YAML."""
    if not inventory_dir.is_dir():
        raise InventoryError(f"{inventory_dir}: inventory folder not found")
    hosts = _load_yaml(inventory_dir / "hosts.yaml", required=True)
    groups = _load_yaml(inventory_dir / "groups.yaml", required=False)
    defaults = _load_yaml(inventory_dir / "defaults.yaml", required=False)
    if not hosts:
        raise InventoryError(f"{inventory_dir / 'hosts.yaml'}: no hosts")
    for kind, entries in (("host", hosts), ("group", groups)):
        for name, entry in entries.items():
            where = f"{inventory_dir / (kind + 's.yaml')}: {kind} {name!r}"
            if entry is None:
                entries[name] = entry = {}
            if not isinstance(entry, dict):
                raise InventoryError(f"{where}: expected a mapping")
            member_of = entry.get("groups", []) or []
            if not isinstance(member_of, list):
                raise InventoryError(f"{where}: groups must be a list")
            unknown = [g for g in member_of if g not in groups]
            if unknown:
                raise InventoryError(f"{where}: unknown group(s) {', '.join(map(str, unknown))}")
            port = entry.get("port")
            if port is not None and (not isinstance(port, int) or not 0 < port < 65536):
                raise InventoryError(f"{where}: port must be a number 1-65535, not {port!r}")
    for name in hosts:
        if not _resolve(name, "hostname", hosts, groups, defaults):
            raise InventoryError(f"{inventory_dir / 'hosts.yaml'}: host {name!r} has no hostname")
    return hosts, groups, defaults


def _resolve(name: str, key: str, hosts: Mapping[str, Any], groups: Mapping[str, Any],
             defaults: Mapping[str, Any]) -> Any:
    entry = hosts[name] or {}
    if entry.get(key) is not None:
        return entry[key]
    for group in entry.get("groups", []) or []:
        value = (groups.get(group) or {}).get(key)
        if value is not None:
            return value
    return defaults.get(key)


def files_of(inventory_dir: Path) -> dict[str, str]:
    """The inventory's file names -> the paths error messages name."""
    return {name: str(inventory_dir / name) for name in ("hosts.yaml", "groups.yaml", "defaults.yaml")}


def digest(inventory_dir: Path) -> str:
    """A digest of the inventory files (recorded in run.json so a run names the inventory it saw)."""
    h = hashlib.sha256()
    for name in ("hosts.yaml", "groups.yaml", "defaults.yaml"):
        path = inventory_dir / name
        h.update(name.encode() + b"\0" + (path.read_bytes() if path.exists() else b"") + b"\0")
    return "sha256:" + h.hexdigest()


def init_nornir(inventory_dir: Path, workers: int | None = None) -> Any:
    """Validated inventory -> Nornir with the threaded runner and no logging to files."""
    hosts, groups, defaults = validate(inventory_dir)
    try:
        return nornir_from(hosts, groups, defaults, workers)
    except Exception as exc:  # nornir raises many types; the user needs one line
        raise InventoryError(f"{inventory_dir}: {exc.__class__.__name__}: {exc}".splitlines()[0]) from None


def nornir_from(hosts: Mapping[str, Any], groups: Mapping[str, Any], defaults: Mapping[str, Any],
                workers: int | None = None) -> Any:
    """Nornir over already validated inventory mappings (SimpleInventory's layout), with the threaded runner."""
    from nornir import InitNornir

    from hardnir import validated_inventory

    validated_inventory.register()

    quiet_nornir_log()
    return InitNornir(
        runner={"plugin": "threaded", "options": {"num_workers": workers or DEFAULT_WORKERS}},
        inventory={  # the folder's files as validate() parsed them, not parsed a second time by Nornir
            "plugin": validated_inventory.PLUGIN_NAME,
            "options": {"hosts": hosts, "groups": groups, "defaults": defaults},
        },
        logging={"enabled": False},
    )


def quiet_nornir_log() -> None:
    """Nornir logs every failed task with a traceback; hardnir reports failures as rows and one-line messages."""
    import logging

    nornir_log = logging.getLogger("nornir")
    nornir_log.handlers[:] = [logging.NullHandler()]
    nornir_log.propagate = False


def filter_hosts(nr: Any, hosts: Sequence[str] | None, groups: Sequence[str] | None) -> Any:
    names = list(nr.inventory.hosts)
    if hosts:
        unknown = [h for h in hosts if h not in names]
        if unknown:
            raise InventoryError(f"unknown host(s): {', '.join(unknown)}")
    if groups:
        known = set(nr.inventory.groups)
        unknown = [g for g in groups if g not in known]
        if unknown:
            raise InventoryError(f"unknown group(s): {', '.join(unknown)}")

    def wanted(host: Any) -> bool:
        if hosts and host.name not in hosts:
            return False
        return not groups or any(host.has_parent_group(g) for g in groups)

    filtered = nr.filter(filter_func=wanted)
    if not filtered.inventory.hosts:
        raise InventoryError("the host/group selection matches no host")
    return filtered


def secrets_of(nr: Any) -> list[str]:
    """Every password or passphrase the inventory or its environment names (to redact from all output)."""
    import os

    found: list[str] = []

    def collect(extras: Mapping[str, Any]) -> None:
        for key, value in extras.items():
            if key in ("password", "passphrase", "sudo_password") and value:
                found.append(str(value))
            elif key.endswith("_env") and os.environ.get(str(value)):
                found.append(os.environ[str(value)])
            elif key.endswith("_file") and key.startswith(("password", "passphrase", "sudo_password")):
                with contextlib.suppress(OSError):
                    found.append(Path(str(value)).expanduser().read_text().rstrip("\n"))
            elif isinstance(value, Mapping):
                collect(value)

    for host in nr.inventory.hosts.values():
        if host.password:
            found.append(str(host.password))
        collect(host.get_connection_parameters(CONNECTION_NAME).extras or {})
    return sorted({s for s in found if s}, key=len, reverse=True)


def host_groups(nr: Any) -> dict[str, list[str]]:
    return {name: [g.name for g in host.groups] for name, host in nr.inventory.hosts.items()}


def as_list(value: str | Iterable[str] | None) -> list[str] | None:
    if value is None:
        return None
    items = value.split(",") if isinstance(value, str) else list(value)
    return [i.strip() for i in items if i.strip()] or None
