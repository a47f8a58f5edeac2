"""`hardnir init`: parsing the host list, and the inventory it writes (valid, loadable, never overwritten)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from hardnir.init_inventory import HostLine, HostsFileError, init_inventory, parse_hosts, parse_line
from hardnir.inventory import init_nornir, validate


@pytest.mark.parametrize(("line", "expected"), [
    ("web-01", HostLine("web-01", "web-01")),
    ("web-01.example.net.", HostLine("web-01.example.net.", "web-01.example.net.")),
    ("10.0.0.5", HostLine("10.0.0.5", "10.0.0.5")),
    ("10.0.0.5:2222", HostLine("10.0.0.5:2222", "10.0.0.5", 2222)),
    ("core@10.0.0.5", HostLine("10.0.0.5", "10.0.0.5", None, "core")),
    ("ops@db.example.net:22", HostLine("db.example.net:22", "db.example.net", 22, "ops")),
    ("fd00::5", HostLine("fd00::5", "fd00::5")),
    ("[fd00::5]:2222", HostLine("[fd00::5]:2222", "fd00::5", 2222)),
    ("root@[FD00:0::5]", HostLine("fd00::5", "fd00::5", None, "root")),
])
def test_parse_line(line: str, expected: HostLine) -> None:
    assert parse_line(line) == expected


@pytest.mark.parametrize(("line", "reason"), [
    ("web 01", "without spaces"),
    ("web-01:0", "port must be a number 1-65535"),
    ("web-01:65536", "port must be a number"),
    ("web-01:ssh", "port must be a number"),
    ("@web-01", "bad user name"),
    ("bad user@web-01".replace(" ", "\t"), "without spaces"),
    ("-rf@web-01", "bad user name"),
    ("web_01;rm", "neither a host name nor an IP address"),
    ("$(reboot)", "neither a host name"),
    ("300.1.2.3", "neither a host name"),
    ("[fd00::5", "expected [address]:port"),
    ("[fd00::5]2222", "expected [address]:port"),
    ("core@", "no host name"),
    ("-web", "neither a host name"),
])
def test_bad_lines_say_why(line: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason.replace("[", r"\[").replace("]", r"\]")):
        parse_line(line)


def test_comments_blank_lines_and_every_bad_line_reported() -> None:
    text = "# my fleet\n\nweb-01  # front\n bad host \nweb-01\nx:0\n10.0.0.5\n"
    with pytest.raises(HostsFileError) as err:
        parse_hosts(text.splitlines(), "hosts.txt")
    assert err.value.problems == [
        "hosts.txt line 4: 'bad host': one host per line, without spaces",
        "hosts.txt line 5: 'web-01' is already on line 3",
        "hosts.txt line 6: 'x:0': port must be a number 1-65535, not '0'",
    ]
    assert [h.name for h in parse_hosts(["# only", "web-01 # c", "", "10.0.0.5"])] == ["web-01", "10.0.0.5"]


def test_an_empty_list_is_an_error() -> None:
    with pytest.raises(HostsFileError, match="no hosts"):
        parse_hosts(["# nothing", ""], "hosts.txt")


def test_the_inventory_is_valid_and_loads_in_nornir(tmp_path: Path) -> None:
    hosts = parse_hosts(["web-01", "core@10.0.0.5:2222", "[fd00::5]:22", "ops@db"])
    written = init_inventory(tmp_path / "fleet", hosts)
    assert [p.name for p in written] == ["hosts.yaml", "groups.yaml", "defaults.yaml"]
    validate(tmp_path / "fleet")
    nr = init_nornir(tmp_path / "fleet")
    got = {n: (h.hostname, h.port, h.username) for n, h in nr.inventory.hosts.items()}
    assert got == {"web-01": ("web-01", 22, "core"), "10.0.0.5:2222": ("10.0.0.5", 2222, "core"),
                   "[fd00::5]:22": ("fd00::5", 22, "core"), "db": ("db", 22, "ops")}
    extras = nr.inventory.hosts["web-01"].get_connection_parameters("hardnir").extras
    assert extras["known_hosts"] == str((tmp_path / "fleet").resolve() / "known_hosts")
    assert extras["host_key_policy"] == "strict"
    assert "key_filename" not in extras  # the agent and ~/.ssh keys, as OpenSSH
    groups_text = (tmp_path / "fleet" / "groups.yaml").read_text()
    assert yaml.safe_load(groups_text) == {} and "# production:" in groups_text


def test_never_overwrites(tmp_path: Path) -> None:
    folder = tmp_path / "fleet"
    folder.mkdir()
    (folder / "defaults.yaml").write_text("mine: true\n")
    with pytest.raises(FileExistsError, match="never overwrites"):
        init_inventory(folder, parse_hosts(["web-01"]))
    assert (folder / "defaults.yaml").read_text() == "mine: true\n"
    assert not (folder / "hosts.yaml").exists()


def hardnir(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hardnir.cli", *args], capture_output=True, text=True,
                          timeout=60, input=stdin)


def test_cli_reads_standard_input_and_refuses_a_second_time(tmp_path: Path) -> None:
    done = hardnir("init", str(tmp_path / "fleet"), "--hosts", "-", stdin="web-01\n10.0.0.5\n")
    assert done.returncode == 0, done.stderr
    assert "hardnir keys scan -i" in done.stdout
    again = hardnir("init", str(tmp_path / "fleet"), "--hosts", "-", stdin="web-02\n")
    assert again.returncode == 2 and again.stderr.count("\n") == 1 and "already exists" in again.stderr
    assert "web-02" not in (tmp_path / "fleet" / "hosts.yaml").read_text()


def test_cli_lists_every_bad_line_and_writes_nothing(tmp_path: Path) -> None:
    hosts = tmp_path / "hosts.txt"
    hosts.write_text("web-01\nweb 02\nweb-03:99999\n")
    done = hardnir("init", str(tmp_path / "fleet"), "--hosts", str(hosts))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.splitlines() == [
        f"hardnir: error: {hosts} line 2: 'web 02': one host per line, without spaces",
        f"hardnir: error: {hosts} line 3: 'web-03:99999': port must be a number 1-65535, not '99999'",
    ]
    assert not (tmp_path / "fleet").exists()
    missing = hardnir("init", str(tmp_path / "fleet"), "--hosts", str(tmp_path / "nope.txt"))
    assert missing.returncode == 2 and "nope.txt" in missing.stderr and missing.stderr.count("\n") == 1
