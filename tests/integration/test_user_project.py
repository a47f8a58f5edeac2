"""The done-when of issue 12: a Nornir user's own project (examples/user-project) drives hardnir on the lab.

The project is copied to a folder of its own, with its own `tasks/` and `runbooks/` packages, a nornir.yaml with
nornir-ansible's AnsibleInventory, and its own pytest run (its own rootdir and conftest). It audits an nr.filter,
fixes and undoes a control with nr.run + print_result, and pip-installs the example plugin packages to use them
from the CLI. The hosts it may change are reset afterwards.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from hardnir.lab import reset_host

pytestmark = pytest.mark.lab

PROJECT = Path(__file__).resolve().parents[2] / "examples" / "user-project"


def test_a_nornir_project_uses_hardnir_as_a_library(lab: Any, tmp_path: Path) -> None:
    canary = [h.name for h in lab.hosts if h.profile.get("fleet") == "vanilla"][:2]
    assert len(canary) == 2, "the seeded lab has fewer than two hosts with a vanilla fleet.socket"
    project = tmp_path / "user-project"
    shutil.copytree(PROJECT, project, ignore=shutil.ignore_patterns("__pycache__"))
    env = dict(os.environ, HARDNIR_LAB_INVENTORY=str(lab.inventory_dir), HARDNIR_USER_HOSTS=",".join(canary))
    try:
        run = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q"], cwd=project, env=env,
                             capture_output=True, text=True, timeout=1200)
    finally:
        for host in canary:
            reset_host(host)
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    assert "4 passed" in run.stdout and "skipped" not in run.stdout, run.stdout[-2000:]
