"""`hardnir params` and `hardnir controls --params`: the effective parameters and the declared ones, as text."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from hardnir.control import catalogue, select
from hardnir.hostdata import connection, effective, validate
from hardnir.inventory import as_list, filter_hosts
from hardnir.inventory_source import open_inventory
from hardnir.params import SHARED, Param


def show(inventory: str | Path | None = None, *, config: str | Path | None = None,
         hosts: str | Iterable[str] | None = None, controls: str | Iterable[str] | None = None,
         as_json: bool = False) -> str:
    """Per host of an inventory folder or a Nornir config file: the connection settings and each selected
    control's parameters with their origin."""
    selected = select(controls)
    opened = open_inventory(inventory, config=config)
    nr = filter_hosts(opened.nr, as_list(hosts), None)
    validate(nr, opened.files)
    out: dict[str, Any] = {}
    for name, host in nr.inventory.hosts.items():
        out[name] = {"connection": connection(host), "controls": effective(host, selected)}
    if as_json:
        return json.dumps(out, indent=2, sort_keys=False) + "\n"
    import yaml

    return str(yaml.safe_dump(out, sort_keys=False, allow_unicode=True, width=1000))


def _param_lines(params: Iterable[Param], prefix: str = "") -> list[str]:
    lines = []
    for p in params:
        if p.kind == "section":
            lines += _param_lines(p.fields, f"{prefix}{p.name}.")
            continue
        default = "" if p.default is None else f" (default {p.default!r})"
        lines.append(f"    {prefix}{p.name}: {p.describe()}{default}: {p.doc}")
    return lines


def controls_table(with_params: bool = False) -> str:
    """One line per control (id, severity, platforms, guide section, title); with `with_params`, its parameters
    (key in host data, accepted values, default)."""
    lines = []
    for c in catalogue().values():
        origin = f"  [{c.distribution} {c.version}]" if c.distribution else ""
        lines.append(f"{c.id:<20} {c.meta.severity:<9} {','.join(c.meta.platforms):<20} {c.meta.section:<45} "
                     f"{c.meta.title}{origin}")
        if with_params:
            lines.append(f"  host data key `{c.param_key}`:")
            lines += _param_lines(c.fields)
            if c.shared:
                lines.append(f"  shared: {', '.join(c.shared)} (see below)")
    if with_params:
        lines.append("shared parameters (top-level host data keys):")
        lines += _param_lines(SHARED.values())
    return "\n".join(lines) + "\n"
