"""The lab benchmark's Ansible tasks (benchmarks/ansible_tasks.py) print what hardnir's probe gathers, item for item.

Run here, on this machine, side by side: the probe for a set of items (one script, its archive parsed) and each
item's task script alone (`sh -c`, as Ansible's shell module runs it). Files of every type, sockets, users, a
listener and commands that use the probe's helpers; units and environments need systemd and are compared on the lab
(see benchmarks/README.md, "The lab benchmark").
"""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from hardnir import probe

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from ansible_tasks import item_script, listeners, playbook, task_script

PORT = 31790  # a TCP listener of this test (helper port range 31700-31799)
COMMANDS = {
    "groups": "_groups root",
    "groups-unknown": "_groups no-such-user-hardnir",
    "grep": "_grep -H 'root:*' 'daemon:*' -- /etc/group /no/such/file",
    "getent": "_getent group root",
    "cat": "_cat /etc/os-release",
    "gid": "_gid root && echo \"gid $_g\"",
    "both-streams": "echo out; echo err >&2; exit 3",
    "addresses": '_cat "$D/addrs"',
    "listen-line": f'_grep - "*:{PORT} *" -- "$D/listen"',  # the machine's other listeners come and go
}


@pytest.fixture
def listener() -> Iterator[None]:
    with socket.create_server(("127.0.0.1", PORT)):
        yield


@pytest.fixture
def items(tmp_path: Path, listener: None) -> list[tuple[str, str]]:
    small = tmp_path / "small.conf"
    small.write_text("KEY=value\n# a comment\n")
    small.chmod(0o640)
    big = tmp_path / "big.bin"
    big.write_bytes(bytes(range(256)) * 1200)  # past the probe's archive cap: stat, sha256 and a capped head
    secret = tmp_path / "key.pem"
    secret.write_text("-----BEGIN PRIVATE KEY-----\n")
    (tmp_path / "link").symlink_to(small)
    (tmp_path / "dir").mkdir()
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(tmp_path / "app.sock"))
    found = [probe.file_item(str(p)) for p in (small, big, tmp_path / "link", tmp_path / "dir", tmp_path / "none")]
    found += [probe.file_item(str(secret), content=False)]
    found += [probe.socket_item(str(tmp_path / "app.sock"), "nobody"), probe.socket_item(str(tmp_path / "no.sock"))]
    found += [probe.user_item("root"), probe.user_item("no-such-user-hardnir"), probe.listen_item(f"tcp:{PORT}")]
    found += [probe.command_item(name, command, quick=name != "both-streams") for name, command in COMMANDS.items()]
    return found


def test_each_task_prints_the_probes_item(items: list[tuple[str, str]]) -> None:
    built = probe.build(items)
    gathered = built.parse(subprocess.run(["sh", "-c", built.script], capture_output=True, text=True,
                                          check=True).stdout)
    ss = listeners(items)  # with a `listen:` item: `ss -lnp`, as the probe runs it
    for name, arg in items:
        task = subprocess.run(["sh", "-c", task_script(name, arg, ss)], capture_output=True, text=True)
        assert not task.stderr, (name, task.stderr)
        assert (task.returncode, task.stdout) == (gathered[name].rc, gathered[name].text), name
    assert gathered["cmd:both-streams"] == probe.Item(3, "out\nerr\n")
    assert gathered["cmd:groups"].text == "root\n"
    assert f"127.0.0.1:{PORT} " in gathered["cmd:listen-line"].text and gathered[f"listen:tcp:{PORT}"].text


def test_every_probe_item_kind_has_a_task_and_the_play_one_task_each() -> None:
    kinds = {"unit": "sshd.socket", "file": "/etc/hostname", "socket": "/run/docker.sock", "procenv": "etcd.service",
             "envfiles": "locksmithd.service", "cmd": "true", "listen": "tcp:22", "user": "core"}
    assert set(kinds) == set(probe.KINDS)
    items = [(f"{kind}:{value}", "") for kind, value in kinds.items()]
    for name, arg in items:
        assert subprocess.run(["sh", "-n", "-c", task_script(name, arg)]).returncode == 0, name
    with pytest.raises(ValueError, match="no Ansible task"):
        item_script("nope:x", "")
    [play] = playbook(items)
    assert [t["name"] for t in play["tasks"]] == [n for n, _ in items]  # type: ignore[index,union-attr]
