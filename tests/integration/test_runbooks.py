"""Runbooks over the whole lab (12 hosts in mixed states + one address with nothing behind it)."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from hardnir import api
from hardnir.control import catalogue
from hardnir.lab import lab_exec, reset_host
from hardnir.schema import COLUMNS

pytestmark = pytest.mark.lab


def final(outcome: api.RunOutcome, phase: str = "check") -> dict[tuple[str, str], str]:
    return {(r["host"], r["control"]): str(r["status"]) for r in outcome.rows if r["phase"] == phase}


def reordered_inventory(lab: Any, tmp_path: Path, first: str) -> Path:
    src = Path(lab.inventory_dir)
    hosts = yaml.safe_load((src / "hosts.yaml").read_text())
    ordered = {first: hosts.pop(first), **hosts}
    dst = tmp_path / "inv"
    dst.mkdir()
    (dst / "hosts.yaml").write_text(yaml.safe_dump(ordered, sort_keys=False))
    for name in ("groups.yaml", "defaults.yaml"):
        (dst / name).write_text((src / name).read_text())
    return dst


def test_audit_remediate_rollback_of_the_fleet(lab: Any, tmp_path: Path) -> None:
    names = [h.name for h in lab.hosts]
    dead = [h.name for h in lab.dead_hosts]
    all_hosts = names + dead
    n_controls = len(catalogue())

    audit = api.execute("audit", lab.inventory_dir, out=tmp_path / "audit")
    assert len(audit.rows) == len(all_hosts) * n_controls
    assert {(r["host"], r["control"]) for r in audit.rows} == {(h, c) for h in all_hosts for c in catalogue()}
    for row in audit.rows:
        if row["host"] in dead:
            assert row["status"] == "error" and "unreachable" in str(row["message"])
        else:
            assert row["status"] in ("pass", "fail", "not_applicable")
            assert str(row["host_key"]).startswith("SHA256:")
    assert audit.exit_code == api.EXIT_UNREACHABLE
    statuses = {r["status"] for r in audit.rows if r["host"] not in dead}
    assert {"pass", "fail", "not_applicable"} <= statuses  # the seeded fleet is mixed

    try:
        fixed = api.execute("remediate", lab.inventory_dir, wave_size=5, max_fail_percent=50, out=tmp_path / "fix")
        for phase in ("check", "fix", "verify"):
            assert len([r for r in fixed.rows if r["phase"] == phase]) == len(all_hosts) * n_controls
        after = final(fixed, "verify")
        for (host, control), status in after.items():
            if host in dead:
                assert status == "error"
            elif control == "core-wheel":  # lockout guard: the tool logs in as core and no fallback is set
                assert status == "fail"
            else:
                assert status in ("pass", "not_applicable"), (host, control, status)
        blocked = [r for r in fixed.rows if r["phase"] == "fix" and r["control"] == "core-wheel"
                   and r["host"] not in dead]
        assert {r["status"] for r in blocked} == {"blocked"}
        assert all("lockout guard" in str(r["message"]) for r in blocked)
        assert len(fixed.notes) >= 3 and all("stopped" not in n for n in fixed.notes)

        undo = api.execute("rollback", lab.inventory_dir, target_run=tmp_path / "fix", out=tmp_path / "undo")
        assert {r["status"] for r in undo.rows if r["host"] not in dead and r["phase"] == "rollback"} \
            <= {"restored", "unchanged"}
        assert final(undo, "verify") == {k: v for k, v in final(audit).items()}
        again = api.execute("audit", lab.inventory_dir, out=tmp_path / "again")
        assert final(again) == final(audit)
    finally:
        for name in names:
            reset_host(name)


def test_waves_stop_when_the_canary_fails(lab: Any, tmp_path: Path) -> None:
    dead = lab.dead_hosts[0].name
    inv = reordered_inventory(lab, tmp_path, dead)
    outcome = api.execute("remediate", inv, controls="fleet-socket", wave_size=1, max_fail_percent=0,
                          dry_run=True, out=tmp_path / "run")
    fix_rows = {r["host"]: r for r in outcome.rows if r["phase"] == "fix"}
    assert fix_rows[dead]["status"] == "error"
    others = [h for h in fix_rows if h != dead]
    assert others and all("stopped after wave 1" in str(fix_rows[h]["message"]) for h in others)
    assert outcome.exit_code == api.EXIT_UNREACHABLE


def test_csv_schema_and_formula_neutralisation(lab: Any, tmp_path: Path) -> None:
    host = lab.hosts[0].name
    formula = '=HYPERLINK("http://198.19.0.1/x","click")'
    dropin = "/etc/systemd/system/fleet.service.d/50-evil.conf"
    escaped = formula.replace('"', '\\"')
    lab_exec(host, "mkdir -p /etc/systemd/system/fleet.service.d && "
                   f"printf '[Service]\\nEnvironment=\"FLEET_ETCD_SERVERS={escaped}\"\\n' > {dropin} && "
                   "systemctl daemon-reload && systemctl restart fleet.service")
    try:
        result = subprocess.run(
            [sys.executable, "-m", "hardnir.cli", "audit", "-i", str(lab.inventory_dir), "--hosts", host,
             "--controls", "fleet-etcd-tls", "--out", str(tmp_path / "run"), "--quiet"],
            capture_output=True, text=True, timeout=120,
        )
        assert result.returncode == api.EXIT_NONCOMPLIANT, result.stderr
        with (tmp_path / "run" / "results.csv").open(encoding="utf-8", newline="") as fh:
            reader = csv.reader(fh)
            header = next(reader)
            rows = list(reader)
        assert header[: len(COLUMNS)] == list(COLUMNS)
        observed = rows[0][header.index("observed")]
        assert observed.startswith("'=HYPERLINK"), observed
        from hardnir.results import read_run

        df = read_run(tmp_path / "run")
        assert df.loc[0, "observed"].startswith("=HYPERLINK")
        assert str(df["changed"].dtype) == "bool" and str(df["status"].dtype) == "category"
        assert "datetime64" in str(df["started_at"].dtype)
    finally:
        reset_host(host)


def test_cli_exit_codes_on_the_lab(lab: Any, tmp_path: Path) -> None:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "hardnir.cli", *args, "--quiet"], capture_output=True,
                              text=True, timeout=300)

    inv = str(lab.inventory_dir)
    compliant = next(h.name for h in lab.hosts if h.profile.get("sshd") == "restricted")
    assert run("audit", "-i", inv, "--hosts", compliant, "--controls", "sshd-socket",
               "--out", str(tmp_path / "ok")).returncode == api.EXIT_OK
    vanilla = lab.hosts[0].name
    assert run("audit", "-i", inv, "--hosts", vanilla, "--out", str(tmp_path / "nc")).returncode \
        == api.EXIT_NONCOMPLIANT
    assert run("audit", "-i", inv, "--out", str(tmp_path / "dead")).returncode == api.EXIT_UNREACHABLE
    dry = subprocess.run([sys.executable, "-m", "hardnir.cli", "remediate", "-i", inv, "--hosts", vanilla,
                          "--controls", "fleet-socket", "--dry-run", "--out", str(tmp_path / "dry")],
                         capture_output=True, text=True, timeout=300)  # not -q: the plan is printed
    assert dry.returncode == api.EXIT_NONCOMPLIANT
    assert "10-root-only.conf" in dry.stdout and "SocketMode=0600" in dry.stdout
    report = subprocess.run([sys.executable, "-m", "hardnir.cli", "report", str(tmp_path / "nc"),
                             str(tmp_path / "dry")], capture_output=True, text=True, timeout=60)
    assert report.returncode == 0 and "->" in report.stdout
    try:
        fixed = run("remediate", "-i", inv, "--hosts", vanilla, "--controls", "fleet-socket",
                    "--out", str(tmp_path / "fix"))
        assert fixed.returncode == api.EXIT_OK, fixed.stdout
        undo = run("rollback", "-i", inv, "--run", str(tmp_path / "fix"), "--hosts", vanilla,
                   "--out", str(tmp_path / "undo"))
        assert undo.returncode == api.EXIT_OK, undo.stdout
        assert "rollback: restored 1" in undo.stdout
        status = subprocess.run([sys.executable, "-m", "hardnir.cli", "lab", "status"], capture_output=True,
                                text=True, timeout=60)
        assert status.returncode == 0 and vanilla in status.stdout
    finally:
        reset_host(vanilla)
