"""A Nornir inventory plugin over a SimpleInventory folder that hardnir has already parsed and validated.

Nornir's SimpleInventory parses the same YAML again with ruamel.yaml's pure-Python loader: at 10,000 hosts that
second parse cost more than a minute. This plugin builds the same Nornir objects (hosts, groups, defaults,
connection options; SimpleInventory's semantics) from the mappings hardnir's validator loaded once with libyaml.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nornir.core.inventory import (
    ConnectionOptions,
    Defaults,
    Group,
    Groups,
    Host,
    Hosts,
    Inventory,
    ParentGroups,
)
from nornir.core.plugins.inventory import InventoryPluginRegister

PLUGIN_NAME = "HardnirValidatedInventory"
_FIELDS = ("hostname", "port", "username", "password", "platform")


def _connection_options(data: Mapping[str, Any]) -> dict[str, ConnectionOptions]:
    return {name: ConnectionOptions(**{f: (opts or {}).get(f) for f in _FIELDS}, extras=(opts or {}).get("extras"))
            for name, opts in (data.get("connection_options") or {}).items()}


class ValidatedInventory:
    """Nornir inventory plugin: `options: {hosts: {...}, groups: {...}, defaults: {...}}` as parsed YAML."""

    def __init__(self, hosts: Mapping[str, Any], groups: Mapping[str, Any] | None = None,
                 defaults: Mapping[str, Any] | None = None) -> None:
        self.hosts, self.groups, self.defaults = hosts, groups or {}, defaults or {}

    def load(self) -> Inventory:
        d = self.defaults
        defaults = Defaults(**{f: d.get(f) for f in _FIELDS}, data=d.get("data"),
                            connection_options=_connection_options(d))
        groups = Groups()
        for name, entry in self.groups.items():
            groups[name] = self._element(Group, name, entry or {}, defaults)
        for name, entry in self.groups.items():
            groups[name].groups = ParentGroups([groups[g] for g in (entry or {}).get("groups") or []])
        hosts = Hosts()
        for name, entry in self.hosts.items():
            host = hosts[name] = self._element(Host, name, entry or {}, defaults)
            host.groups = ParentGroups([groups[g] for g in (entry or {}).get("groups") or []])
        return Inventory(hosts=hosts, groups=groups, defaults=defaults)

    @staticmethod
    def _element(kind: Any, name: str, entry: Mapping[str, Any], defaults: Defaults) -> Any:
        return kind(name=name, **{f: entry.get(f) for f in _FIELDS}, data=entry.get("data"), groups=None,
                    defaults=defaults, connection_options=_connection_options(entry))


def register() -> None:
    if PLUGIN_NAME not in InventoryPluginRegister.available:
        InventoryPluginRegister.register(PLUGIN_NAME, ValidatedInventory)
