"""Controls and runbooks from other packages (entry points `hardnir.controls`, `hardnir.runbooks`), without a lab.

The example plugin packages in examples/plugins/ are made importable with a real `.dist-info` (what pip writes and
`importlib.metadata` reads) on PYTHONPATH; the lab test installs them with pip and remediates with them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from nornir.core.task import Result, Task

from hardnir import api, runbook
from hardnir.nornir_tasks import check_control
from hardnir.run_context import RunContext, finish_host
from hardnir.runbook import Runbook, registry
from tests.offline_setup import PLUGINS, add_distribution, recorded_facts, unreachable_inventory


@pytest.fixture()
def site(tmp_path: Path) -> Path:
    site = tmp_path / "site"
    site.mkdir()
    add_distribution(site, "hardnir-login-banner", "1.0.0",
                     "[hardnir.controls]\nlogin-banner = hardnir_login_banner\n", "hardnir_login_banner")
    add_distribution(site, "hardnir-quick-fix", "0.2.0",
                     "[hardnir.runbooks]\nquick-fix = hardnir_quick_fix:RUNBOOK\n", "hardnir_quick_fix")
    return site


def hardnir(site: Path, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(site))
    return subprocess.run([sys.executable, "-m", "hardnir.cli", *args], capture_output=True, text=True, timeout=120,
                          env=env, cwd=cwd)


def test_the_built_in_runbooks_are_records() -> None:
    books = registry()
    assert {"audit", "remediate", "rollback"} <= set(books)
    assert books["remediate"].waves and books["rollback"].undoes == "remediate"
    assert not books["audit"].distribution


def test_a_plugin_control_is_listed_selected_waived_and_recorded(site: Path, tmp_path: Path) -> None:
    listing = hardnir(site, "controls")
    assert listing.returncode == 0, listing.stderr
    line = next(x for x in listing.stdout.splitlines() if x.startswith("login-banner"))
    assert "[hardnir-login-banner 1.0.0]" in line
    inv = unreachable_inventory(tmp_path / "inv")
    waivers = tmp_path / "waivers.yaml"
    waivers.write_text("waivers:\n  - control: login-banner\n    hosts: [h1]\n    reason: kiosk hosts show no banner\n"
                       "    expires: 2099-01-01\n")
    audit = hardnir(site, "audit", "-i", str(inv), "--controls", "login-banner,core-rkt", "--waivers",
                    str(waivers), "--out", str(tmp_path / "run"), "--quiet")
    assert audit.returncode == 4, audit.stderr  # h1 is unreachable: error rows for both controls
    meta = json.loads((tmp_path / "run" / "run.json").read_text())
    assert meta["controls"] == {"core-rkt": "1", "login-banner": "1"}
    assert meta["plugins"] == {"controls": {"login-banner": {"distribution": "hardnir-login-banner",
                                                             "version": "1.0.0"}}, "runbook": None}


def test_a_plugin_runbook_gets_the_run_machinery(site: Path, tmp_path: Path) -> None:
    inv = unreachable_inventory(tmp_path / "inv")
    run = hardnir(site, "run", "quick-fix", "-i", str(inv), "--controls", "login-banner", "--out",
                  str(tmp_path / "run"), "--quiet")
    assert run.returncode == 4, run.stderr
    meta = json.loads((tmp_path / "run" / "run.json").read_text())
    assert meta["runbook"] == "quick-fix"
    assert meta["plugins"]["runbook"] == {"distribution": "hardnir-quick-fix", "version": "0.2.0"}
    phases = (tmp_path / "run" / "results.csv").read_text().splitlines()[1:]
    assert [p.split(",")[4] for p in phases] == ["check", "fix", "verify"]


def recorded_probe(task: Task) -> Result:
    """What `gather_facts` returns, from a recording of a Flatcar host: this runbook needs no SSH."""
    return Result(host=task.host, result=recorded_facts("flatcar-vanilla", task.host.name))


def facts_only_host(task: Task, ctx: RunContext) -> Result:
    """A third-party runbook: it gathers facts and checks, and leaves the platform columns to hardnir."""
    started = time.time()
    facts = task.run(task=recorded_probe)[0].result
    rows = [ctx.finding_row(task.host.name, c, "check", task.run(task=check_control, control=c, facts=facts)[0].result,
                            started, "") for c in ctx.controls]
    finish_host(task, ctx, rows)
    return Result(host=task.host, result=rows)


FACTS_ONLY = Runbook("facts-only", phases=("check",), host_task=facts_only_host)


def test_a_plugin_runbooks_rows_carry_the_platform_of_its_facts(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    site = tmp_path / "site"
    site.mkdir()
    add_distribution(site, "hardnir-facts-only", "1.0", f"[hardnir.runbooks]\nfacts-only = {__name__}:FACTS_ONLY\n")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setattr(runbook, "_REGISTRY", None)  # read the entry points again, with this site on the path
    outcome = api.execute("facts-only", unreachable_inventory(tmp_path / "inv", ("h1", "h2")),
                          controls="core-rkt,sshd-socket", out=tmp_path / "run")
    assert outcome.meta["plugins"]["runbook"] == {"distribution": "hardnir-facts-only", "version": "1.0"}
    assert len(outcome.rows) == 4
    assert {(r["host"], r["platform"], r["platform_version"]) for r in outcome.rows} == {
        ("h1", "flatcar", "3510.2.1"), ("h2", "flatcar", "3510.2.1")}
    header = (tmp_path / "run" / "results.csv").read_text().splitlines()[0].split(",")
    assert {"platform", "platform_version"} <= set(header)


def test_a_broken_plugin_is_one_line(site: Path, tmp_path: Path) -> None:
    add_distribution(site, "hardnir-broken", "9.9.9", "[hardnir.controls]\nwrong-name = hardnir_login_banner\n",
                     "hardnir_login_banner")
    result = hardnir(site, "controls")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "hardnir: error: entry point 'wrong-name' of hardnir-broken 9.9.9: control id 'login-banner' differs "
        "from the entry point name"]


def test_the_readme_shows_the_complete_control_package_in_under_40_lines() -> None:
    readme = (PLUGINS.parents[1] / "README.md").read_text()
    files = sorted((PLUGINS / "hardnir-login-banner").iterdir())
    assert [f.name for f in files] == ["hardnir_login_banner.py", "pyproject.toml"]
    assert sum(len(f.read_text().splitlines()) for f in files) < 40
    for f in files:
        assert f.read_text().rstrip() in readme, f"README does not show {f.name} as it is"
