"""The `hardnir` connection plugin against real sshd in the lab: host keys, auth, streams, timeouts, sudo."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from hardnir.lab import lab_exec
from hardnir.ssh import HardnirConnection, HostKeyError, SSHError

pytestmark = pytest.mark.lab


def connect(lab: Any, host: Any, **extras: Any) -> HardnirConnection:
    options = {"key_filename": str(lab.key_file), "known_hosts": str(lab.known_hosts)}
    options.update(extras)
    conn = HardnirConnection()
    conn.open(host.address, extras.pop("username", "core"), None, 22, None, options)
    return conn


@pytest.fixture
def conn(lab: Any) -> Any:
    c = connect(lab, lab.hosts[0])
    yield c
    c.close()


def test_key_auth_and_sudo(conn: HardnirConnection) -> None:
    assert conn.run("id -un").stdout.strip() == "core"
    result = conn.run("id -u", sudo=True)
    assert result.ok and result.stdout.strip() == "0"
    assert conn.host_key_fingerprint.startswith("SHA256:")


def test_unknown_host_key_is_refused_with_fingerprint(lab: Any, tmp_path: Path) -> None:
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    host = lab.hosts[0]
    with pytest.raises(HostKeyError) as err:
        connect(lab, host, known_hosts=str(empty))
    assert host.address in str(err.value) and "unknown host key" in str(err.value)
    assert host.host_key_fingerprint in str(err.value)


def test_changed_host_key_is_refused(lab: Any, tmp_path: Path) -> None:
    first, second = lab.hosts[0], lab.hosts[1]
    lines = Path(lab.known_hosts).read_text().splitlines()
    other_key = next(line for line in lines if line.split()[0] == second.address).split(None, 1)[1]
    forged = tmp_path / "known_hosts"
    forged.write_text(f"{first.address} {other_key}\n")
    with pytest.raises(HostKeyError) as err:
        connect(lab, first, known_hosts=str(forged))
    assert "CHANGED" in str(err.value) and first.host_key_fingerprint in str(err.value)


def test_accept_new_records_the_key_then_strict_accepts_it(lab: Any, tmp_path: Path) -> None:
    fresh = tmp_path / "known_hosts"
    host = lab.hosts[0]
    c = connect(lab, host, known_hosts=str(fresh), host_key_policy="accept-new")
    c.close()
    assert host.address in fresh.read_text()
    c = connect(lab, host, known_hosts=str(fresh))
    assert c.run("true").ok
    c.close()


def test_four_megabytes_of_stderr_do_not_deadlock(conn: HardnirConnection) -> None:
    result = conn.run("head -c 4194304 /dev/zero | tr '\\0' x >&2; echo done", timeout=60)
    assert result.ok
    assert len(result.stderr) == 4194304
    assert result.stdout.strip() == "done"


def test_non_utf8_bytes_survive(conn: HardnirConnection) -> None:
    result = conn.run("printf 'a\\377\\376b\\n'")
    assert result.stdout == "a\ufffd\ufffdb\n"


def test_remote_timeout_kills_the_remote_process(lab: Any, conn: HardnirConnection) -> None:
    started = time.monotonic()
    result = conn.run("sleep 600", timeout=2)
    elapsed = time.monotonic() - started
    assert result.timed_out
    assert elapsed < 6, elapsed
    time.sleep(0.5)
    left = lab_exec(lab.hosts[0].name, "pgrep -x sleep -a | grep -c 'sleep 600' || true")
    assert left.stdout.strip() == "0"


def test_sudo_timeout_kills_root_process(lab: Any, conn: HardnirConnection) -> None:
    result = conn.run("sleep 601", timeout=2, sudo=True)
    assert result.timed_out
    time.sleep(0.5)
    left = lab_exec(lab.hosts[0].name, "pgrep -f 'sleep 601' | wc -l")
    assert left.stdout.strip() == "0"


def test_unreachable_address_fails_fast(lab: Any) -> None:
    c = HardnirConnection()
    started = time.monotonic()
    with pytest.raises(SSHError) as err:
        c.open("198.19.255.254", "core", None, 22, None,
               {"key_filename": str(lab.key_file), "known_hosts": str(lab.known_hosts), "connect_timeout": 3})
    assert time.monotonic() - started < 8
    assert "198.19.255.254" in str(err.value)
    assert "unreachable" in str(err.value) or "timed out" in str(err.value)


def test_wrong_key_is_an_auth_error(lab: Any, tmp_path: Path) -> None:
    import paramiko

    key = paramiko.ECDSAKey.generate()
    path = tmp_path / "other"
    key.write_private_key_file(str(path))
    with pytest.raises(SSHError) as err:
        connect(lab, lab.hosts[0], key_filename=str(path))
    assert "authentication failed" in str(err.value)


def test_jump_host(lab: Any) -> None:
    jump, target = lab.hosts[0], lab.hosts[1]
    c = connect(lab, target, jump_host={"hostname": jump.address, "username": "core"})
    assert c.run("uname -n").ok
    c.close()


def test_extras_are_not_mutated(lab: Any) -> None:
    extras = {"key_filename": str(lab.key_file), "known_hosts": str(lab.known_hosts)}
    before = dict(extras)
    c = HardnirConnection()
    c.open(lab.hosts[0].address, "core", None, 22, None, extras)
    c.close()
    assert extras == before
