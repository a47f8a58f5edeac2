"""Set-up shared by the tests that run without a lab: an inventory of unreachable hosts (127.0.0.1 port 1: no
traffic leaves the machine), a Nornir config file over such a folder, probe facts recorded from a lab host, and
plugin packages made importable with a real `.dist-info` (what pip writes and `importlib.metadata` reads)."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

import yaml

from hardnir.facts import Facts
from hardnir.probe import Item

FIXTURES = Path(__file__).resolve().parent / "fixtures"
PLUGINS = Path(__file__).resolve().parents[1] / "examples" / "plugins"
UNREACHABLE_DEFAULTS = "username: core\nconnection_options:\n  hardnir:\n    extras:\n      connect_timeout: 2\n"


def unreachable_inventory(root: Path, hosts: Sequence[str] = ("h1",)) -> Path:
    """A SimpleInventory folder whose hosts all point at a closed loopback port."""
    root.mkdir(parents=True)
    (root / "hosts.yaml").write_text("".join(f"{name}: {{hostname: 127.0.0.1, port: 1}}\n" for name in hosts))
    (root / "defaults.yaml").write_text(UNREACHABLE_DEFAULTS)
    return root


def simple_inventory_config(inventory: Path, path: Path) -> Path:
    """A Nornir config file at `path` that reads the SimpleInventory folder `inventory`."""
    files = {"host_file": "hosts.yaml", "group_file": "groups.yaml", "defaults_file": "defaults.yaml"}
    options = {option: str(inventory / name) for option, name in files.items() if (inventory / name).exists()}
    path.write_text(yaml.safe_dump({"inventory": {"plugin": "SimpleInventory", "options": options},
                                    "logging": {"enabled": False}}))
    return path


def recorded_facts(name: str = "coreos-vanilla", host: str = "lab-01") -> Facts:
    """Probe facts recorded from a lab host (`hardnir facts`), tests/fixtures/facts/<name>.yaml."""
    data = yaml.safe_load((FIXTURES / "facts" / f"{name}.yaml").read_text())
    return Facts({k: Item(int(v["rc"]), str(v["text"])) for k, v in data.items()}, host=host, address="198.19.1.1")


def add_distribution(site: Path, name: str, version: str, entry_points: str, module: str = "") -> None:
    """Make the distribution `name` importable from `site`: its entry points and, when given, the module of
    examples/plugins/ it ships."""
    if module:
        shutil.copy(next(PLUGINS.glob(f"*/{module}.py")), site / f"{module}.py")
    info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(entry_points)
