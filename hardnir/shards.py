"""Cut a run's hosts into shards for a distributed runner (pure: names in, shards out).

- Without a key, hosts are cut in inventory order into about `target` shards of equal size.
- With `shard_by`, hosts that share a key value stay in one shard (a site is never split). The key value of a host
  is the first of its groups whose name starts with `shard_by`, else its host data value `shard_by`; hosts with
  neither are cut like unkeyed hosts.
- A shard never mixes sites: hosts carrying a different `hardnir_site` are in different shards, so a shard can ask
  for the Dask worker resource of its site (`site-<name>`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

SITE_KEY = "hardnir_site"
SHARDS_PER_WORKER = 4


@dataclass(frozen=True)
class Shard:
    index: int
    hosts: tuple[str, ...]
    key: str = ""  # the --shard-by value these hosts share ("" for a plain cut)
    site: str = ""  # their hardnir_site ("" for none)

    @property
    def resources(self) -> dict[str, float]:
        """The Dask worker resources this shard needs: one unit of `site-<site>` for a site's hosts."""
        return {site_resource(self.site): 1} if self.site else {}


def site_resource(site: str) -> str:
    return f"site-{site}"


def shard_key(groups: Sequence[str], value: Any, shard_by: str | None) -> str:
    """A host's `--shard-by` value: its first group named with the prefix, else its data `value`, else ""."""
    if not shard_by:
        return ""
    for group in groups:
        if group.startswith(shard_by):
            return group
    return "" if value is None or value == "" else str(value)


def plan_shards(hosts: Sequence[str], target: int, keys: Mapping[str, str] | None = None,
                sites: Mapping[str, str] | None = None) -> list[Shard]:
    """`hosts` (in order) as shards: keyed hosts one shard per (site, key), the others cut to about `target` shards.

    Every host is in exactly one shard; shards are numbered from 0 in the order their first host appears.
    """
    keys, sites = keys or {}, sites or {}
    size = max(1, math.ceil(len(hosts) / max(target, 1)))
    units: dict[tuple[str, str], list[str]] = {}
    for host in hosts:
        units.setdefault((sites.get(host, ""), keys.get(host, "")), []).append(host)
    shards: list[Shard] = []
    for (site, key), members in units.items():
        chunks = [members] if key else [members[i:i + size] for i in range(0, len(members), size)]
        shards.extend(Shard(0, tuple(chunk), key, site) for chunk in chunks)
    order = {host: i for i, host in enumerate(hosts)}
    shards.sort(key=lambda s: order[s.hosts[0]])
    return [Shard(i, s.hosts, s.key, s.site) for i, s in enumerate(shards)]
