"""The command line without a lab: help on every command, one-line errors and exit code 2 on bad input."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from hardnir.cli import build_parser, main

COMMANDS = ["audit", "remediate", "run", "rollback", "report", "lab", "controls", "facts", "params", "init", "keys",
            "doctor"]


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


@pytest.mark.parametrize("command", [*COMMANDS, "lab up", "lab down", "lab status"])
def test_help_exits_zero(command: str) -> None:
    result = hardnir(*command.split(), "--help")
    assert result.returncode == 0, result.stderr
    assert f"usage: hardnir {command}" in result.stdout


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


def usage_error(*args: str) -> str:
    """argparse usage errors: exit 2, a usage line and one error line naming the option."""
    result = hardnir(*args)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    return result.stderr.strip().splitlines()[-1]


@pytest.mark.parametrize("option", ["--hosts", "--groups", "--controls", "--exclude"])
def test_an_empty_selection_is_a_usage_error(tmp_path: Path, option: str) -> None:
    inv = write_inventory(tmp_path / "inv", "h1: {hostname: 198.19.255.254}\n")
    for value in ("", " , "):
        line = usage_error("remediate", "-i", str(inv), option, value)
        assert option in line and "at least one" in line


@pytest.mark.parametrize(("args", "option"), [
    (["--workers", "0"], "--workers"), (["--workers", "-3"], "--workers"), (["--workers", "x"], "--workers"),
    (["--wave-size", "-1"], "--wave-size"), (["--wave-size", "0"], "--wave-size"),
    (["--max-fail-percent", "150"], "--max-fail-percent"), (["--max-fail-percent", "-1"], "--max-fail-percent"),
])
def test_numeric_options_are_range_checked(tmp_path: Path, args: list[str], option: str) -> None:
    inv = write_inventory(tmp_path / "inv", "h1: {hostname: 198.19.255.254}\n")
    line = usage_error("remediate", "-i", str(inv), *args)
    assert option in line and ("range" in line or "not a number" in line)


def test_out_is_checked_before_the_run(tmp_path: Path) -> None:
    inv = write_inventory(tmp_path / "inv", "h1: {hostname: 198.19.255.254}\n")
    started = time.monotonic()
    line = one_line_error(hardnir("audit", "-i", str(inv), "--out", "/proc/nope/run"))
    assert "--out /proc/nope/run" in line and time.monotonic() - started < 10
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "results.csv").write_text("x")
    assert "not empty" in one_line_error(hardnir("audit", "-i", str(inv), "--out", str(busy)))
    afile = tmp_path / "afile"
    afile.write_text("x")
    assert "not a directory" in one_line_error(hardnir("audit", "-i", str(inv), "--out", str(afile)))


def test_host_key_policy_typo_is_a_usage_error(tmp_path: Path) -> None:
    inv = write_inventory(tmp_path / "inv", "h1: {hostname: 198.19.255.254}\n", "",
                          "connection_options:\n  hardnir:\n    extras:\n      host_key_policy: stirct\n")
    line = one_line_error(hardnir("audit", "-i", str(inv)))
    assert "defaults.yaml" in line and "host_key_policy" in line and "did you mean 'strict'" in line


def test_validation_errors_never_open_a_connection(tmp_path: Path) -> None:
    """198.19.255.254 is unroutable and no lab host: a connection attempt would take connect_timeout (120 s)."""
    inv = write_inventory(
        tmp_path / "inv", "h1:\n  hostname: 198.19.255.254\n  data:\n    sshd_socket:\n      listen:\n"
        "        - \"198.18.1.11:22\\nExecStartPre=/bin/touch /root/PWNED-by-inventory\"\n", "",
        "connection_options:\n  hardnir:\n    extras:\n      connect_timeout: 120\n")
    for command in ("audit", "remediate", "facts", "params"):
        started = time.monotonic()
        result = hardnir(command, "-i", str(inv), *(["--out", str(tmp_path / command)]
                                                   if command in ("audit", "remediate") else []))
        assert time.monotonic() - started < 30, command  # far below connect_timeout, even on a busy machine
        line = one_line_error(result)
        assert "hosts.yaml: host 'h1'" in line and "sshd_socket.listen" in line and "PWNED" not in line
        assert not (tmp_path / command).exists()


def test_waivers_naming_unknown_hosts_or_groups(tmp_path: Path) -> None:
    inv = write_inventory(tmp_path / "inv", "h1: {hostname: 127.0.0.1, port: 1}\n", "", "username: core\n")
    waivers = tmp_path / "w.yaml"
    waivers.write_text("waivers:\n  - control: core-rkt\n    hosts: [h1, ghost]\n    groups: [nogroup]\n"
                       "    reason: x\n")
    result = hardnir("audit", "-i", str(inv), "--controls", "core-rkt", "--waivers", str(waivers),
                     "--out", str(tmp_path / "run"), "--quiet")
    assert result.returncode == 4
    assert "warning:" in result.stdout and "host 'ghost', group 'nogroup' not in the inventory" in result.stdout
    line = one_line_error(hardnir("audit", "-i", str(inv), "--waivers", str(waivers), "--strict-waivers",
                                  "--out", str(tmp_path / "run2")))
    assert "ghost" in line and "--strict-waivers" in line


def test_facts_follows_the_exit_code_table(tmp_path: Path) -> None:
    inv = write_inventory(tmp_path / "inv", "h1: {hostname: 127.0.0.1, port: 1}\n", "",
                          "username: core\nconnection_options:\n  hardnir:\n    extras:\n      connect_timeout: 2\n")
    result = hardnir("facts", "-i", str(inv), "--controls", "core-rkt")
    assert result.returncode == 4, result.stderr
    assert "error:" in result.stdout


def test_params_shows_values_origins_and_hides_secrets(tmp_path: Path) -> None:
    import json

    inv = write_inventory(
        tmp_path / "inv",
        "w1:\n  hostname: 10.20.1.21\n  groups: [production]\n  data:\n    sshd_socket: {listen: ['10.20.1.21:22']}\n",
        "production:\n  data:\n    sshd_socket: {policy: disabled}\n",
        "username: core\npassword: Hunter2-secret\nconnection_options:\n  hardnir:\n    extras:\n"
        "      sudo_password: Sud0-secret\n")
    result = hardnir("params", "-i", str(inv), "--controls", "sshd-socket", "--json")
    assert result.returncode == 0, result.stderr
    assert "Hunter2-secret" not in result.stdout and "Sud0-secret" not in result.stdout
    shown = json.loads(result.stdout)["w1"]
    assert shown["controls"]["sshd-socket"]["policy"] == {"value": "disabled", "from": "group production"}
    assert shown["controls"]["sshd-socket"]["listen"] == {"value": ["10.20.1.21:22"], "from": "host w1"}
    assert shown["connection"]["password"] == "***" and shown["connection"]["extras"]["sudo_password"] == "***"
    text = hardnir("params", "-i", str(inv), "--hosts", "w1").stdout
    assert "from: group production" in text


def test_controls_lists_every_parameter() -> None:
    from hardnir.control import catalogue

    text = hardnir("controls", "--params").stdout
    for control in catalogue().values():
        assert f"`{control.param_key}`" in text
        for param in control.fields:
            assert f"    {param.name}: " in text, (control.id, param.name)
