"""hardnir from a plain Nornir project: any inventory, nr.filter, nr.run, print_result, plugins on the CLI."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from nornir.core import Nornir
from nornir.core.filter import F
from nornir_utils.plugins.functions import print_result
from tasks.uptime import uptime

import hardnir
from hardnir.nornir_tasks import check_control, fix_control, rollback_control

PLUGINS = ["hardnir-login-banner", "hardnir-quick-fix"]


def test_our_tasks_package_and_hardnirs_live_side_by_side(nr: Nornir, canary: list[str]) -> None:
    result = nr.filter(name=canary[0]).run(task=uptime)
    assert str(result[canary[0]][0].result).startswith("up ")
    assert Path(sys.modules["tasks"].__file__ or "").parent == Path(__file__).parents[1] / "tasks"


def test_audit_a_nornir_filter(nr: Nornir, canary: list[str], tmp_path: Path) -> None:
    df = hardnir.audit(nr.filter(F(groups__contains="canary")), controls="fleet-socket,core-rkt",
                       out=tmp_path / "run")
    assert sorted(df["host"].unique()) == sorted(canary)
    assert set(df[df["control"] == "fleet-socket"]["status"]) == {"fail"}  # the canaries run a vanilla fleet
    assert json.loads((tmp_path / "run" / "run.json").read_text())["inventory"] == "nornir object (AnsibleInventory)"


def test_fix_and_undo_with_nr_run(nr: Nornir, canary: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    host = nr.filter(name=canary[0])
    fixed = host.run(task=fix_control, control="fleet-socket")
    print_result(fixed)
    shown = capsys.readouterr().out
    assert "changed : True" in shown and "status='fixed'" in shown
    assert len(shown.splitlines()) < 60  # the facts gathered on the way (~350 lines) are DEBUG: not printed
    outcome = fixed[canary[0]][0].result
    assert not fixed.failed and fixed[canary[0]].changed
    assert host.run(task=check_control, control="fleet-socket")[canary[0]][0].result.status == "pass"
    undone = host.run(task=rollback_control, control="fleet-socket", run_id=outcome.run_id)
    print_result(undone)
    assert "changed : True" in capsys.readouterr().out
    assert host.run(task=check_control, control="fleet-socket")[canary[0]][0].result.status == "fail"


@pytest.fixture(scope="module")
def plugins(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The example plugin packages, pip-installed (offline) into this venv for the module, then removed."""
    source = Path(hardnir.__file__).resolve().parents[1] / "examples" / "plugins"
    build = tmp_path_factory.mktemp("plugins")
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    try:
        for name in PLUGINS:
            shutil.copytree(source / name, build / name)
            subprocess.run([*pip, "install", "--no-deps", "--no-build-isolation", "--no-index", str(build / name)],
                           check=True, timeout=300)
        yield
    finally:
        subprocess.run([*pip, "uninstall", "-y", *PLUGINS], check=False, timeout=300)


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hardnir.cli", *args, "--quiet"] if args[0] != "controls"
                          else [sys.executable, "-m", "hardnir.cli", *args], capture_output=True, text=True,
                          timeout=600)


def rows(run: Path) -> dict[tuple[str, str, str], str]:
    import csv

    with (run / "results.csv").open(encoding="utf-8") as handle:
        return {(r["host"], r["control"], r["phase"]): r["status"] for r in csv.DictReader(handle)}


@pytest.mark.usefixtures("plugins")
def test_a_plugin_control_and_runbook_from_the_cli(config: Path, canary: list[str], tmp_path: Path) -> None:
    listing = cli("controls")
    assert "[hardnir-login-banner 1.0.0]" in listing.stdout, listing.stderr
    first, second = canary[:2]
    waivers = tmp_path / "waivers.yaml"
    waivers.write_text(f"waivers:\n  - control: login-banner\n    hosts: [{second}]\n    reason: kiosk\n"
                       "    expires: 2099-01-01\n")
    fix = tmp_path / "fix"
    remediate = cli("remediate", "--config", str(config), "--groups", "canary", "--controls", "login-banner",
                    "--waivers", str(waivers), "--out", str(fix))
    assert remediate.returncode == 0, remediate.stdout + remediate.stderr
    assert rows(fix)[(first, "login-banner", "fix")] == "fixed"
    assert rows(fix)[(second, "login-banner", "fix")] == "unchanged"  # waived
    meta = json.loads((fix / "run.json").read_text())
    assert meta["plugins"]["controls"]["login-banner"] == {"distribution": "hardnir-login-banner", "version": "1.0.0"}
    undo = cli("rollback", "--config", str(config), "--run", str(fix), "--hosts", f"{first},{second}", "--out",
               str(tmp_path / "undo"))
    assert undo.returncode == 0, undo.stdout + undo.stderr
    assert rows(tmp_path / "undo")[(first, "login-banner", "rollback")] == "restored"
    quick = cli("run", "quick-fix", "--config", str(config), "--hosts", second, "--controls",
                "login-banner,fleet-socket", "--out", str(tmp_path / "quick"))
    found = rows(tmp_path / "quick")
    assert found[(second, "login-banner", "fix")] == "fixed" and found[(second, "login-banner", "verify")] == "pass"
    assert found[(second, "fleet-socket", "fix")] == "unchanged"  # disruption medium: quick-fix leaves it
    assert quick.returncode == 1  # fleet-socket still fails its verify
    assert json.loads((tmp_path / "quick" / "run.json").read_text())["plugins"]["runbook"] == {
        "distribution": "hardnir-quick-fix", "version": "0.2.0"}
