"""One import name: hardnir's controls and runbooks live in `hardnir.tasks` and `hardnir.runbooks`, so a user
project with its own `tasks/` and `runbooks/` packages (the usual Nornir layout) shadows nothing."""

from __future__ import annotations

import csv
import subprocess
import sys
import tomllib
from pathlib import Path

from hardnir.control import catalogue
from tests.offline_setup import unreachable_inventory

REPO = Path(__file__).resolve().parents[2]


def test_an_audit_from_a_project_with_its_own_tasks_and_runbooks(tmp_path: Path) -> None:
    for package in ("tasks", "runbooks"):
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("MINE = True\n")
        (tmp_path / package / "audit.py").write_text("raise ImportError('the user project module was imported')\n")
    unreachable_inventory(tmp_path / "inventory")
    result = subprocess.run([sys.executable, "-m", "hardnir.cli", "audit", "-i", "inventory", "--out", "run",
                             "--quiet"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 4, result.stderr  # the host is unreachable: error rows, not "no control"
    with (tmp_path / "run" / "results.csv").open(encoding="utf-8") as handle:
        controls = {row["control"] for row in csv.DictReader(handle)}
    assert controls == set(catalogue())
    shadowed = subprocess.run([sys.executable, "-c", "import tasks, hardnir.tasks; print(tasks.MINE, "
                               "hardnir.tasks.__file__)"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert shadowed.stdout.split() == ["True", str(REPO / "tasks" / "__init__.py")], shadowed.stderr


def test_every_package_is_installed_and_nothing_else_at_the_top() -> None:
    """setuptools lists packages by hand (tasks/ and runbooks/ are mapped into hardnir): a new one must be added."""
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    on_disk = {".".join(p.parent.relative_to(REPO).parts) for p in (REPO / "hardnir").rglob("__init__.py")}
    on_disk |= {"hardnir.tasks", "hardnir.runbooks"}
    assert set(config["packages"]) == on_disk
    assert {p.split(".")[0] for p in config["packages"]} == {"hardnir"}
    assert config["package-dir"] == {"hardnir.tasks": "tasks", "hardnir.runbooks": "runbooks"}
