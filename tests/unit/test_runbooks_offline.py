"""Runbooks against hosts that cannot be reached (closed ports on loopback: no traffic leaves the machine):
every host still gets its rows, the run directory is complete, waves stop on the failure threshold, and no
secret is written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hardnir import api
from hardnir.control import catalogue

SECRET = "hunter2-S3cr3t!"
SUDO_SECRET = "sudo-Pa55-xyz"


def inventory(root: Path, hosts: int = 3) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "hosts.yaml").write_text(
        "".join(f"dead-{i}:\n  hostname: 127.0.0.1\n  port: {closed_port()}\n  groups: [edge]\n"
                for i in range(1, hosts + 1))
    )
    (root / "groups.yaml").write_text("edge: {}\n")
    (root / "defaults.yaml").write_text(
        f"username: core\npassword: {SECRET}\nconnection_options:\n  hardnir:\n    extras:\n"
        "      connect_timeout: 2\n      sudo_password_env: HARDNIR_TEST_SUDO\n"
        f"      known_hosts: {root / 'known_hosts'}\n"
    )
    return root


def closed_port() -> int:
    """A loopback port with nothing listening (bound then released)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(autouse=True)
def sudo_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HARDNIR_TEST_SUDO", SUDO_SECRET)


def test_audit_of_unreachable_hosts_gives_error_rows(tmp_path: Path) -> None:
    inv = inventory(tmp_path / "inv")
    outcome = api.execute("audit", inv, out=tmp_path / "run")
    assert len(outcome.rows) == 3 * len(catalogue())
    assert {r["status"] for r in outcome.rows} == {"error"}
    assert all("127.0.0.1" in str(r["message"]) and "unreachable" in str(r["message"]) for r in outcome.rows)
    assert outcome.exit_code == api.EXIT_UNREACHABLE
    for name in ("results.csv", "results.parquet", "run.json"):
        assert (tmp_path / "run" / name).exists()
    meta = json.loads((tmp_path / "run" / "run.json").read_text())
    assert meta["runbook"] == "audit" and meta["inventory_digest"].startswith("sha256:")
    assert set(meta["controls"]) == set(catalogue())


def test_remediate_rows_cover_every_phase(tmp_path: Path) -> None:
    inv = inventory(tmp_path / "inv", hosts=2)
    outcome = api.execute("remediate", inv, controls="core-docker,fleet-socket", out=tmp_path / "run")
    phases = sorted((r["host"], r["control"], r["phase"]) for r in outcome.rows)
    assert len(phases) == len(set(phases)) == 2 * 2 * 3


def test_waves_stop_after_the_failure_threshold(tmp_path: Path) -> None:
    inv = inventory(tmp_path / "inv", hosts=4)
    outcome = api.execute("remediate", inv, controls="core-docker", wave_size=1, max_fail_percent=50,
                          out=tmp_path / "run")
    by_host = {r["host"]: r for r in outcome.rows if r["phase"] == "fix"}
    assert len(by_host) == 4
    assert "unreachable" in str(by_host["dead-1"]["message"]) or "timed out" in str(by_host["dead-1"]["message"])
    for host in ("dead-2", "dead-3", "dead-4"):
        assert "stopped after wave 1" in str(by_host[host]["message"])
    assert any("stopped after wave 1" in n for n in outcome.notes)


def test_no_secret_in_any_artefact(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from hardnir.cli import main

    inv = inventory(tmp_path / "inv")
    code = main(["audit", "-i", str(inv), "--out", str(tmp_path / "run")])
    assert code == api.EXIT_UNREACHABLE
    captured = capsys.readouterr()
    blobs = [captured.out, captured.err] + [p.read_bytes().decode("utf-8", "replace")
                                            for p in (tmp_path / "run").iterdir()]
    for blob in blobs:
        assert SECRET not in blob
        assert SUDO_SECRET not in blob


def test_python_api_returns_a_dataframe(tmp_path: Path) -> None:
    import hardnir

    df = hardnir.audit(inventory(tmp_path / "inv", hosts=1), controls="sshd-socket", out=tmp_path / "run")
    assert list(df.columns[:14]) == [
        "run_id", "runbook", "host", "control", "phase", "status", "severity", "changed", "expected",
        "observed", "message", "evidence", "started_at", "duration_s",
    ]
    assert df.attrs["exit_code"] == 4
    back = hardnir.read_run(tmp_path / "run")
    assert back[["host", "control", "status"]].equals(df[["host", "control", "status"]])


def test_cli_quiet_json_and_reports_after_a_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """-q prints one summary line; the default lists the error findings by control; --format json is the JSON
    report on stdout; --report writes each format (into the run directory, covered by SHA256SUMS, or to FILE)."""
    from hardnir.cli import main
    from hardnir.store import verify_manifest
    from tests.report_checks import check_json, check_junit, check_sarif

    inv = inventory(tmp_path / "inv", hosts=2)
    assert main(["audit", "-i", str(inv), "--out", str(tmp_path / "q"), "-q"]) == api.EXIT_UNREACHABLE
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].endswith(f"2 hosts, final status: pass 0, fail 0, waived 0, not_applicable 0, error "
                             f"{2 * len(catalogue())}")
    assert not any(line.startswith("Per control") or "Findings" in line for line in lines)
    assert lines[-1] == "exit code: 4"

    assert main(["audit", "-i", str(inv), "--out", str(tmp_path / "t")]) == api.EXIT_UNREACHABLE
    out = capsys.readouterr().out
    assert "Findings (fail and error, by control)" in out
    assert all(f"{c.id} ({c.meta.severity}): {c.meta.title} -- 0 fail, 2 error" in out for c in catalogue().values())

    run = tmp_path / "j"
    junit = tmp_path / "ci" / "junit.xml"
    code = main(["audit", "-i", str(inv), "--out", str(run), "-q", "--format", "json",
                 "--report", f"junit:{junit}", "--report", "sarif", "--report", "html"])
    assert code == api.EXIT_UNREACHABLE
    captured = capsys.readouterr()
    document = check_json(captured.out, run)
    assert document["run"]["exit_code"] == 4 and len(document["findings"]) == 2 * len(catalogue())
    assert f"report: {junit}" in captured.err
    check_junit(junit.read_text(encoding="utf-8"), run)
    check_sarif((run / "report.sarif").read_text(encoding="utf-8"), run)
    check = verify_manifest(run)
    assert check.intact and {"report.sarif", "report.html", "controls.json", "run.json"} <= set(check.ok)
    assert SECRET not in captured.out and SECRET not in (run / "report.html").read_text(encoding="utf-8")
