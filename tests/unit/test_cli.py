"""The command line without a lab: help on every command, one-line errors and exit code 2 on bad input."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from hardnir.cli import build_parser, main

COMMANDS = ["audit", "remediate", "rollback", "report", "lab", "controls", "facts", "init", "keys", "doctor"]


def hardnir(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hardnir.cli", *args], capture_output=True, text=True, timeout=60)


def write_inventory(root: Path, hosts: str, groups: str = "", defaults: str = "") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "hosts.yaml").write_text(hosts)
    (root / "groups.yaml").write_text(groups)
    (root / "defaults.yaml").write_text(defaults)
    return root


def test_every_command_has_help() -> None:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    names = set(sub.choices)  # type: ignore[arg-type]
    assert names == set(COMMANDS)
    for name, p in sub.choices.items():  # type: ignore[union-attr]
        assert p.description, name
        if name != "lab":
            assert p.format_help().strip()


@pytest.mark.parametrize("command", [c for c in COMMANDS if c != "lab"])
def test_help_exits_zero(command: str) -> None:
    result = hardnir(command, "--help")
    assert result.returncode == 0
    assert "usage: hardnir" in result.stdout


def test_help_is_fast_and_does_not_import_pandas() -> None:
    code = "import sys, hardnir.cli as c; c.build_parser().format_help(); print('pandas' in sys.modules)"
    started = time.monotonic()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert out.stdout.strip() == "False"
    assert time.monotonic() - started < 5  # the 0.5 s target is measured in benchmarks/


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


def test_unknown_control_id(tmp_path: Path) -> None:
    inv = write_inventory(tmp_path / "inv", "h1: {hostname: 198.19.255.1}\n")
    line = one_line_error(hardnir("audit", "-i", str(inv), "--controls", "sshd-socket,no-such-control"))
    assert "no-such-control" in line and "known:" in line


@pytest.mark.parametrize(
    ("hosts", "groups", "expected"),
    [
        ("h1: {hostname: [oops\n", "", "hosts.yaml"),
        ("h1: {hostname: 198.19.255.1, groups: [nope]}\n", "", "unknown group"),
        ("h1: {port: 22}\n", "", "no hostname"),
        ("h1: {hostname: a}\nh1: {hostname: b}\n", "", "duplicate name 'h1'"),
        ("- a\n- b\n", "", "expected a mapping"),
        ("h1: {hostname: a, port: 99999}\n", "", "port must be"),
        ("", "", "no hosts"),
    ],
)
def test_broken_inventory(tmp_path: Path, hosts: str, groups: str, expected: str) -> None:
    inv = write_inventory(tmp_path / "inv", hosts, groups)
    line = one_line_error(hardnir("audit", "-i", str(inv)))
    assert expected in line


def test_missing_inventory_dir(tmp_path: Path) -> None:
    line = one_line_error(hardnir("audit", "-i", str(tmp_path / "nowhere")))
    assert "not found" in line


def test_malformed_waiver_file(tmp_path: Path) -> None:
    inv = write_inventory(tmp_path / "inv", "h1: {hostname: 198.19.255.1}\n")
    waivers = tmp_path / "w.yaml"
    waivers.write_text("waivers:\n  - control: core-docker\n    all: true\n    expires: not-a-date\n    reason: x\n")
    line = one_line_error(hardnir("audit", "-i", str(inv), "--waivers", str(waivers)))
    assert "w.yaml" in line


def test_unknown_host_selection(tmp_path: Path) -> None:
    inv = write_inventory(tmp_path / "inv", "h1: {hostname: 198.19.255.1}\n")
    line = one_line_error(hardnir("audit", "-i", str(inv), "--hosts", "h2"))
    assert "h2" in line


def test_report_of_missing_run(tmp_path: Path) -> None:
    line = one_line_error(hardnir("report", str(tmp_path / "no-run")))
    assert "no-run" in line


def test_rollback_of_non_run(tmp_path: Path) -> None:
    inv = write_inventory(tmp_path / "inv", "h1: {hostname: 198.19.255.1}\n")
    one_line_error(hardnir("rollback", "-i", str(inv), "--run", str(tmp_path / "no-run")))


def test_no_command_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "usage" in capsys.readouterr().out


def test_controls_lists_the_catalogue() -> None:
    result = hardnir("controls")
    assert result.returncode == 0
    for cid in ("sshd-socket", "etcd-tls", "fleet-etcd-tls", "locksmith-etcd-tls", "core-wheel", "core-docker",
                "core-rkt", "fleet-socket"):
        assert cid in result.stdout
