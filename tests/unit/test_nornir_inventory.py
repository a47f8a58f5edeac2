"""Inventory from Nornir itself: a config file with any inventory plugin, or an initialised Nornir object.

No lab: the hosts are unreachable (127.0.0.1 port 1), which is enough to see the selection, the rows of every
host, the one-line errors and run.json. The real plugin is nornir-ansible's AnsibleInventory (from PyPI); a host
without an address comes from a plugin registered here through Nornir's InventoryPluginRegister.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from nornir import InitNornir
from nornir.core.inventory import Defaults, Groups, Host, Hosts, Inventory
from nornir.core.plugins.inventory import InventoryPluginRegister

from hardnir import api
from hardnir.params import ParamError

ANSIBLE_HOSTS = """\
all:
  vars:
    ansible_user: core
    connection_options:
      hardnir:
        extras: {connect_timeout: 2}
  children:
    edge:
      hosts:
        h1: {ansible_host: 127.0.0.1, ansible_port: 1}
        h2: {ansible_host: 127.0.0.1, ansible_port: 1}
    core:
      hosts:
        h3: {ansible_host: 127.0.0.1, ansible_port: 1, core_rkt: {user: core}}
"""


def ansible_config(root: Path, hosts: str = ANSIBLE_HOSTS) -> Path:
    root.mkdir(exist_ok=True)
    (root / "hosts.yaml").write_text(hosts)
    config = root / "nornir.yaml"
    config.write_text(f"inventory:\n  plugin: AnsibleInventory\n  options:\n    hostsfile: {root / 'hosts.yaml'}\n"
                      "runner:\n  plugin: threaded\n  options: {num_workers: 5}\nlogging: {enabled: false}\n")
    return config


class ListInventory:
    """A minimal inventory plugin: `options: {hosts: [{name, hostname, port}]}`."""

    def __init__(self, hosts: list[Mapping[str, Any]]) -> None:
        self.hosts = hosts

    def load(self) -> Inventory:
        defaults = Defaults(username="core")
        hosts = Hosts({h["name"]: Host(h["name"], hostname=h.get("hostname"), port=h.get("port"),
                                       defaults=defaults) for h in self.hosts})
        return Inventory(hosts=hosts, groups=Groups(), defaults=defaults)


def test_a_config_file_with_the_ansible_inventory(tmp_path: Path) -> None:
    config = ansible_config(tmp_path / "inv")
    outcome = api.execute("audit", config=config, controls="core-rkt", groups="edge", out=tmp_path / "run")
    assert sorted({r["host"] for r in outcome.rows}) == ["h1", "h2"]
    assert {r["status"] for r in outcome.rows} == {"error"} and outcome.exit_code == api.EXIT_UNREACHABLE
    assert outcome.meta["inventory"] == str(config.resolve())
    assert outcome.meta["inventory_digest"].startswith("sha256:")


def test_a_nornir_object_and_its_filter_are_the_selection(tmp_path: Path) -> None:
    nr = InitNornir(config_file=str(ansible_config(tmp_path / "inv")))
    df = api.audit(nr.filter(name="h3"), controls="core-rkt,core-docker", out=tmp_path / "run")
    assert df["host"].unique().tolist() == ["h3"]
    assert sorted(df["control"]) == ["core-docker", "core-rkt"]
    meta = json.loads((tmp_path / "run" / "run.json").read_text())
    assert meta["inventory"] == "nornir object (AnsibleInventory)" and meta["hosts"] == ["h3"]


def test_hardnir_validates_whatever_inventory_results(tmp_path: Path) -> None:
    typo = ANSIBLE_HOSTS.replace("core_rkt: {user: core}", "core_rtk: {user: core}")
    with pytest.raises(ParamError, match=r"h3.*data key 'core_rtk' is not a hardnir parameter"):
        api.execute("audit", config=ansible_config(tmp_path / "inv", typo), out=tmp_path / "run")
    InventoryPluginRegister.register("ListInventory", ListInventory)
    nr = InitNornir(inventory={"plugin": "ListInventory", "options": {"hosts": [
        {"name": "nowhere"}, {"name": "ok", "hostname": "127.0.0.1", "port": 1},
        {"name": "badport", "hostname": "127.0.0.1", "port": 70000}]}}, logging={"enabled": False})
    outcome = api.execute("audit", nr, controls="core-rkt", out=tmp_path / "run2")
    messages = {r["host"]: r["message"] for r in outcome.rows}
    assert list(messages) == ["nowhere", "ok", "badport"]  # inventory order, unusable hosts included
    assert messages["nowhere"] == "inventory: the host has no hostname"
    assert messages["badport"] == "inventory: port must be a number 1-65535, not 70000"


def test_the_cli_takes_a_nornir_config(tmp_path: Path) -> None:
    config = ansible_config(tmp_path / "inv")
    run = subprocess.run([sys.executable, "-m", "hardnir.cli", "audit", "--config", str(config), "--hosts", "h1",
                          "--controls", "core-rkt", "--out", str(tmp_path / "run"), "--quiet"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 4, run.stderr
    assert json.loads((tmp_path / "run" / "run.json").read_text())["options"]["config"] == str(config)
    both = subprocess.run([sys.executable, "-m", "hardnir.cli", "facts", "--config", str(config), "-i", "x"],
                          capture_output=True, text=True, timeout=60)
    assert both.returncode == 2 and "not allowed with argument" in both.stderr
