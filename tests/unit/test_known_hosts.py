"""The shared known_hosts index: plain, hashed, port-qualified, markers, patterns, concurrent accept-new, changes."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from pathlib import Path

import paramiko
import pytest

from hardnir.known_hosts import KnownHosts, hash_name
from hardnir.ssh import HostKeyError, HostKeyVerifier


def _key() -> paramiko.PKey:
    return paramiko.ECDSAKey.generate()


def _line(name: str, key: paramiko.PKey, marker: str = "") -> str:
    return f"{marker + ' ' if marker else ''}{name} {key.get_name()} {key.get_base64()}\n"


def _hashed(name: str, salt: bytes) -> str:
    import base64

    return f"|1|{base64.b64encode(salt).decode()}|{base64.b64encode(hash_name(name, salt)).decode()}"


@pytest.fixture
def key_a() -> paramiko.PKey:
    return _key()


@pytest.fixture
def key_b() -> paramiko.PKey:
    return _key()


def test_plain_and_comma_separated_names(tmp_path: Path, key_a: paramiko.PKey) -> None:
    path = tmp_path / "known_hosts"
    path.write_text("# comment\n\n" + _line("web-1,198.19.1.1", key_a))
    index = KnownHosts(path)
    for name in ("web-1", "198.19.1.1"):
        found = index.lookup(name)
        assert found.known and found.matches(key_a.get_name(), key_a.asbytes())
    assert not index.lookup("web-2").known


def test_port_qualified_names_are_distinct(tmp_path: Path, key_a: paramiko.PKey, key_b: paramiko.PKey) -> None:
    path = tmp_path / "known_hosts"
    path.write_text(_line("198.19.1.1", key_a) + _line("[198.19.1.1]:2222", key_b))
    index = KnownHosts(path)
    assert index.lookup("198.19.1.1").matches(key_a.get_name(), key_a.asbytes())
    assert index.lookup("[198.19.1.1]:2222").matches(key_b.get_name(), key_b.asbytes())
    assert not index.lookup("[198.19.1.1]:2222").matches(key_a.get_name(), key_a.asbytes())


def test_hashed_names_with_distinct_salts(tmp_path: Path, key_a: paramiko.PKey, key_b: paramiko.PKey) -> None:
    path = tmp_path / "known_hosts"
    path.write_text(_line(_hashed("198.19.1.1", os.urandom(20)), key_a)
                    + _line(_hashed("[198.19.1.2]:2222", os.urandom(20)), key_b))
    index = KnownHosts(path)
    assert index.lookup("198.19.1.1").matches(key_a.get_name(), key_a.asbytes())
    assert index.lookup("[198.19.1.2]:2222").matches(key_b.get_name(), key_b.asbytes())
    assert not index.lookup("198.19.1.2").known
    assert index.lookup("198.19.1.1") is index.lookup("198.19.1.1")  # memoised: the second lookup is a dict hit


@pytest.mark.skipif(shutil.which("ssh-keygen") is None, reason="needs ssh-keygen (openssh-client)")
def test_file_hashed_by_ssh_keygen(tmp_path: Path, key_a: paramiko.PKey, key_b: paramiko.PKey) -> None:
    path = tmp_path / "known_hosts"
    path.write_text(_line("198.19.1.1", key_a) + _line("[198.19.1.2]:2222", key_b))
    subprocess.run(["ssh-keygen", "-q", "-H", "-f", str(path)], check=True, capture_output=True)
    assert "198.19" not in path.read_text()
    index = KnownHosts(path)
    assert index.lookup("198.19.1.1").matches(key_a.get_name(), key_a.asbytes())
    assert index.lookup("[198.19.1.2]:2222").matches(key_b.get_name(), key_b.asbytes())


def test_markers_revoked_refused_cert_authority_ignored(tmp_path: Path, key_a: paramiko.PKey,
                                                       key_b: paramiko.PKey) -> None:
    path = tmp_path / "known_hosts"
    path.write_text(_line("198.19.1.1", key_a, "@revoked")
                    + _line("*.example.com", key_b, "@cert-authority")
                    + "@bogus-marker 198.19.1.9 ssh-ed25519 AAAA\n"
                    + "not a valid line\n"
                    + "198.19.1.8 ssh-ed25519 !!!notbase64\n")
    index = KnownHosts(path)
    assert index.cert_authorities == 1
    assert index.skipped_lines == [3, 4, 5]
    assert not index.lookup("web.example.com").known  # a CA line is not a host key
    verifier = HostKeyVerifier(str(path), "accept-new")
    with pytest.raises(HostKeyError, match="@revoked"):
        verifier.verify("198.19.1.1", key_a)  # revoked wins, even with accept-new
    assert "198.19.1.1 " not in path.read_text().replace("@revoked 198.19.1.1", "")


def test_wildcard_and_negated_patterns(tmp_path: Path, key_a: paramiko.PKey) -> None:
    path = tmp_path / "known_hosts"
    path.write_text(_line("*.prod.example.com,!db.prod.example.com", key_a))
    index = KnownHosts(path)
    assert index.lookup("web.prod.example.com").known
    assert not index.lookup("db.prod.example.com").known
    assert not index.lookup("web.test.example.com").known


def test_changed_key_is_refused_and_never_replaced(tmp_path: Path, key_a: paramiko.PKey,
                                                   key_b: paramiko.PKey) -> None:
    path = tmp_path / "known_hosts"
    path.write_text(_line("198.19.1.1", key_a))
    before = path.read_text()
    for policy in ("strict", "accept-new"):
        verifier = HostKeyVerifier(str(path), policy)
        verifier.verify("198.19.1.1", key_a)
        with pytest.raises(HostKeyError, match="CHANGED"):
            verifier.verify("198.19.1.1", key_b)
    assert path.read_text() == before


def test_unknown_key_strict_refused(tmp_path: Path, key_a: paramiko.PKey) -> None:
    path = tmp_path / "known_hosts"
    path.write_text("")
    with pytest.raises(HostKeyError, match="unknown host key"):
        HostKeyVerifier(str(path), "strict").verify("198.19.1.1", key_a)
    assert path.read_text() == ""


def test_concurrent_accept_new_writes_each_name_once(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "known_hosts"
    keys = {f"198.19.2.{i}": _key() for i in range(1, 41)}
    verifier = HostKeyVerifier(str(path), "accept-new")
    barrier = threading.Barrier(20)
    errors: list[BaseException] = []

    def worker(offset: int) -> None:
        barrier.wait()
        try:
            for i, (name, key) in enumerate(keys.items()):
                if (i + offset) % 2 == 0:
                    verifier.verify(name, key)  # every name is verified by 10 threads at once
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    lines = path.read_text().splitlines()
    assert sorted(line.split()[0] for line in lines) == sorted(keys)
    fresh = KnownHosts(path)  # what another process reads
    for name, key in keys.items():
        assert fresh.lookup(name).matches(key.get_name(), key.asbytes())
    with pytest.raises(HostKeyError, match="CHANGED"):  # and what was accepted is now enforced
        verifier.verify("198.19.2.1", _key())


def test_shared_index_is_parsed_once_and_refreshed_on_change(tmp_path: Path, key_a: paramiko.PKey,
                                                            key_b: paramiko.PKey) -> None:
    path = tmp_path / "known_hosts"
    path.write_text(_line("198.19.1.1", key_a))
    first = KnownHosts.shared(path)
    assert KnownHosts.shared(path) is first
    parsed = first._parsed
    KnownHosts.shared(path)
    assert first._parsed is parsed  # unchanged file: not parsed again
    with path.open("a") as fh:
        fh.write(_line("198.19.1.2", key_b))
    assert KnownHosts.shared(path).lookup("198.19.1.2").known  # an outside edit is seen


def test_missing_file_and_no_file(tmp_path: Path, key_a: paramiko.PKey) -> None:
    assert not KnownHosts(tmp_path / "absent").lookup("198.19.1.1").known
    with pytest.raises(HostKeyError, match="no known_hosts file configured"):
        HostKeyVerifier(None, "accept-new").verify("198.19.1.1", key_a)
