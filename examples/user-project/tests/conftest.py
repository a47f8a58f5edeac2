"""Point the project at hardnir's lab: an Ansible inventory and a nornir.yaml made from the lab's inventory."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from nornir import InitNornir
from nornir.core import Nornir

LAB = os.environ.get("HARDNIR_LAB_INVENTORY", "")
CANARY = [h for h in os.environ.get("HARDNIR_USER_HOSTS", "").split(",") if h]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if not LAB or len(CANARY) < 2:
        for item in items:
            item.add_marker(pytest.mark.skip(reason="needs hardnir's lab (tests/integration/test_user_project.py)"))


@pytest.fixture(scope="session")
def canary() -> list[str]:
    """The lab hosts this project may change (hardnir's test resets them afterwards)."""
    return CANARY


@pytest.fixture(scope="session")
def config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """nornir.yaml with AnsibleInventory: the canary hosts in group `canary`, the others in `fleet`."""
    lab = Path(LAB)
    hosts = yaml.safe_load((lab / "hosts.yaml").read_text())
    defaults = yaml.safe_load((lab / "defaults.yaml").read_text())

    def entry(name: str) -> dict[str, object]:
        return {"ansible_host": hosts[name]["hostname"], **hosts[name].get("data", {})}

    inventory = {"all": {
        "vars": {"ansible_user": defaults["username"], "connection_options": defaults["connection_options"],
                 **defaults.get("data", {})},
        "children": {"canary": {"hosts": {n: entry(n) for n in CANARY}},
                     "fleet": {"hosts": {n: entry(n) for n in hosts if n not in CANARY}}}}}
    root = tmp_path_factory.mktemp("nornir")
    (root / "hosts.yaml").write_text(yaml.safe_dump(inventory, sort_keys=False))
    config = root / "nornir.yaml"
    config.write_text(yaml.safe_dump({
        "inventory": {"plugin": "AnsibleInventory", "options": {"hostsfile": str(root / "hosts.yaml")}},
        "runner": {"plugin": "threaded", "options": {"num_workers": 20}},
        "logging": {"enabled": False}}))
    return config


@pytest.fixture()
def nr(config: Path) -> Iterator[Nornir]:
    nornir = InitNornir(config_file=str(config))
    yield nornir
    nornir.close_connections()
