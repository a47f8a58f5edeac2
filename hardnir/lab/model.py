"""What the lab API returns, and the state file that lets `down`, `status` and `reset_host` find the lab."""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from hardnir.lab.common import LabError, state_dir


@dataclass
class LabHost:
    """One lab host (or dead inventory entry) and the state it was seeded with."""

    name: str
    address: str
    profile: dict[str, str]
    host_key_fingerprint: str


@dataclass
class LabInfo:
    """A running lab: its inventory, hosts and the credentials to reach them."""

    inventory_dir: Path
    hosts: list[LabHost]
    key_file: Path
    known_hosts: Path
    ca_file: Path
    dead_hosts: list[LabHost] = field(default_factory=list)
    seed: int = 1
    boot_seconds: float = 0.0
    platform: str = "mixed"


@dataclass
class HostStatus:
    name: str
    address: str
    running: bool
    reachable: bool


@dataclass
class HostRecord:
    name: str
    address: str
    profile: dict[str, str]
    machine_id: str = ""
    host_key_fingerprint: str = ""


@dataclass
class LabState:
    """Contents of <state dir>/state.json. `phase` is "starting" until every host answered, then "up"."""

    seed: int
    rootfs: str
    inventory_dir: str
    key_file: str
    known_hosts: str
    ca_file: str
    created_at: str
    hosts: list[HostRecord] = field(default_factory=list)
    dead: list[HostRecord] = field(default_factory=list)
    phase: str = "starting"
    boot_seconds: float = 0.0
    platform: str = "mixed"

    def host(self, name: str) -> HostRecord:
        for record in self.hosts:
            if record.name == name:
                return record
        raise LabError(f"no lab host named {name!r} (hosts: {', '.join(h.name for h in self.hosts)})")

    def info(self) -> LabInfo:
        def lab_host(r: HostRecord) -> LabHost:
            return LabHost(r.name, r.address, dict(r.profile), r.host_key_fingerprint)

        return LabInfo(
            inventory_dir=Path(self.inventory_dir),
            hosts=[lab_host(r) for r in self.hosts],
            key_file=Path(self.key_file),
            known_hosts=Path(self.known_hosts),
            ca_file=Path(self.ca_file),
            dead_hosts=[lab_host(r) for r in self.dead],
            seed=self.seed,
            boot_seconds=self.boot_seconds,
            platform=self.platform,
        )


def state_file() -> Path:
    return state_dir() / "state.json"


def save_state(state: LabState) -> None:
    path = state_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(state), indent=2) + "\n")
    os.replace(tmp, path)


def load_state() -> LabState | None:
    """The recorded lab, or None when no lab is up (or the file is unreadable)."""
    try:
        raw: dict[str, Any] = json.loads(state_file().read_text())
    except (OSError, ValueError):
        return None
    with contextlib.suppress(TypeError, KeyError, AttributeError):
        raw["hosts"] = [HostRecord(**h) for h in raw.get("hosts", [])]
        raw["dead"] = [HostRecord(**h) for h in raw.get("dead", [])]
        return LabState(**raw)
    return None
