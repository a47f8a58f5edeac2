"""The Nornir SimpleInventory the lab writes for itself (hosts.yaml, groups.yaml, defaults.yaml, lab.json)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import yaml

from hardnir.lab.common import write_file
from hardnir.lab.model import LabHost

ETCD_TLS = {
    "ca_file": "/etc/ssl/etcd/ca.pem",
    "cert_file": "/etc/ssl/etcd/server.pem",
    "key_file": "/etc/ssl/etcd/server-key.pem",
    "client_cert_file": "/etc/ssl/etcd/client.pem",
    "client_key_file": "/etc/ssl/etcd/client-key.pem",
}


def write_inventory(
    directory: Path,
    hosts: list[LabHost],
    dead: list[LabHost],
    lab_key: Path,
    host_public_keys: dict[str, str],
    extra: dict[str, Any],
) -> tuple[Path, Path]:
    """Write the inventory into `directory`; return (key file, known_hosts) inside it.

    `host_public_keys` maps each host address to its "ssh-ed25519 AAAA..." public key, taken from the key
    files the lab generated (never from the network).
    """
    directory.mkdir(parents=True, exist_ok=True)
    uid, gid = _owner(directory)
    key_file = directory / "id_ed25519"
    known_hosts = directory / "known_hosts"
    write_file(key_file, lab_key.read_bytes(), mode=0o600, uid=uid, gid=gid)
    write_file(Path(f"{key_file}.pub"), Path(f"{lab_key}.pub").read_bytes(), mode=0o644, uid=uid, gid=gid)
    lines = []
    for host in hosts:
        kind, blob = host_public_keys[host.address].split()[:2]
        lines.append(f"{host.address} {kind} {blob}\n")
    write_file(known_hosts, "".join(lines), uid=uid, gid=gid)

    inventory_hosts: dict[str, Any] = {
        h.name: {"hostname": h.address, "groups": ["lab"], "data": {"lab_profile": dict(h.profile)}}
        for h in [*hosts, *dead]
    }
    groups = {"lab": {"data": {"lab": True}}}
    defaults = {
        "username": "core",
        "port": 22,
        "connection_options": {
            "hardnir": {
                "extras": {
                    "key_filename": str(key_file),
                    "known_hosts": str(known_hosts),
                    "host_key_policy": "strict",
                }
            }
        },
        "data": {"etcd_tls": dict(ETCD_TLS)},
    }
    header = "# Written by `hardnir lab up`; rewritten on every run.\n"
    for name, content in (("hosts.yaml", inventory_hosts), ("groups.yaml", groups), ("defaults.yaml", defaults)):
        text = header + yaml.safe_dump(content, sort_keys=False, default_flow_style=False)
        write_file(directory / name, text, uid=uid, gid=gid)
    lab = {
        **extra,
        "inventory_dir": str(directory),
        "key_file": str(key_file),
        "known_hosts": str(known_hosts),
        "hosts": [_host_json(h) for h in hosts],
        "dead_hosts": [_host_json(h) for h in dead],
    }
    write_file(directory / "lab.json", json.dumps(lab, indent=2) + "\n", uid=uid, gid=gid)
    return key_file, known_hosts


def _host_json(host: LabHost) -> dict[str, Any]:
    return {"name": host.name, "address": host.address, "profile": dict(host.profile),
            "host_key_fingerprint": host.host_key_fingerprint}


def _owner(directory: Path) -> tuple[int, int]:
    """Files belong to whoever owns the inventory directory (the lab runs as root, often via sudo)."""
    st = os.stat(directory)
    return st.st_uid, st.st_gid
