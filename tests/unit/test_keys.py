"""`hardnir keys`: the --expect file, the verdict per host, and known_hosts appends (no network)."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import paramiko
import pytest

from hardnir.fingerprints import parse_expected
from hardnir.keys import (
    KeyRow,
    KeysOutcome,
    Target,
    append_known_hosts,
    exit_code,
    judge,
    load_known_hosts,
    render,
)
from hardnir.known_hosts import KnownHosts
from hardnir.ssh import fingerprint

KEY_A = paramiko.ECDSAKey.generate()
KEY_B = paramiko.ECDSAKey.generate()


def known(tmp_path: Path, text: str) -> KnownHosts:
    path = tmp_path / "known_hosts"
    path.write_text(text)
    return load_known_hosts([path])[path]


def target(tmp_path: Path, port: int = 22) -> Target:
    return Target("web-01", "10.0.0.5", port, tmp_path / "known_hosts")


def test_expect_file_formats() -> None:
    fp_a = fingerprint(KEY_A)
    text = (
        "# from the provisioning system\n"
        f"web-01 {fp_a}\n"
        f"256 {fingerprint(KEY_B)} core@web-02 (ECDSA)\n"
        f"10.0.0.7,[10.0.0.8]:2222 {KEY_A.get_name()} {KEY_A.get_base64()} comment\n"
        f"web-01 {fp_a}=\n"
    )
    assert parse_expected(text) == {"web-01": [fp_a], "web-02": [fingerprint(KEY_B)], "10.0.0.7": [fp_a],
                                    "[10.0.0.8]:2222": [fp_a]}
    blob = base64.b64decode(KEY_A.get_base64())
    assert fp_a == "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


@pytest.mark.parametrize(("line", "reason"), [
    ("web-01 MD5:aa:bb:cc", "MD5 fingerprints are not accepted"),
    ("web-01 something", "expected 'HOST SHA256:...'"),
    ("256 SHA256:abc (ED25519)", "no host name"),
    (f"|1|abc=|def= {KEY_A.get_name()} {KEY_A.get_base64()}", "hashed host names"),
])
def test_bad_expect_lines(line: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason.replace("(", r"\(").replace(")", r"\)")) as err:
        parse_expected("# ok\n" + line, "fps.txt")
    assert str(err.value).startswith("fps.txt line 2: ")


def test_judge_check(tmp_path: Path) -> None:
    t = target(tmp_path)
    empty = known(tmp_path, "")
    assert judge(t, KEY_A, "", empty, "check").status == "unknown"
    same = known(tmp_path, f"10.0.0.5 {KEY_A.get_name()} {KEY_A.get_base64()}\n")
    row = judge(t, KEY_A, "", same, "check")
    assert (row.status, row.fingerprint, row.name) == ("known", fingerprint(KEY_A), "10.0.0.5")
    other = known(tmp_path, f"10.0.0.5 {KEY_B.get_name()} {KEY_B.get_base64()}\n")
    changed = judge(t, KEY_A, "", other, "accept")
    assert changed.status == "changed" and fingerprint(KEY_B) in changed.message and "not replaced" in changed.message
    assert judge(t, None, "connection timed out after 10s", empty, "check").status == "unreachable"


def test_the_fix_names_the_inventory_as_it_was_given(tmp_path: Path) -> None:
    row = judge(target(tmp_path), KEY_A, "", known(tmp_path, ""), "check")
    out = render(KeysOutcome([row], {}, exit_code([row]), "--config fleet/nornir.yaml"), "check")
    assert "record the keys: hardnir keys scan --config fleet/nornir.yaml --accept" in out


def test_judge_a_non_default_port_uses_the_bracketed_name(tmp_path: Path) -> None:
    t = target(tmp_path, 2222)
    plain = known(tmp_path, f"10.0.0.5 {KEY_A.get_name()} {KEY_A.get_base64()}\n")
    row = judge(t, KEY_A, "", plain, "check")
    assert (row.name, row.status) == ("[10.0.0.5]:2222", "unknown")


def test_judge_accept_and_expect(tmp_path: Path) -> None:
    t = target(tmp_path)
    empty = known(tmp_path, "")
    assert judge(t, KEY_A, "", empty, "accept").status == "accepted"
    by_name = {"web-01": [fingerprint(KEY_A)]}
    by_address = {"10.0.0.5": [fingerprint(KEY_B), fingerprint(KEY_A)]}
    assert judge(t, KEY_A, "", empty, "expect", by_name).status == "verified"
    assert judge(t, KEY_A, "", empty, "expect", by_address).status == "verified"
    mismatch = judge(t, KEY_A, "", empty, "expect", {"web-01": [fingerprint(KEY_B)]})
    assert mismatch.status == "mismatch" and fingerprint(KEY_B) in mismatch.message
    assert judge(t, KEY_A, "", empty, "expect", {"web-02": [fingerprint(KEY_A)]}).status == "not_expected"
    recorded = known(tmp_path, f"10.0.0.5 {KEY_A.get_name()} {KEY_A.get_base64()}\n")
    assert judge(t, KEY_A, "", recorded, "expect", by_name).status == "known"
    assert judge(t, KEY_A, "", recorded, "expect", {}).status == "known"  # the file does not list it: no opinion
    disagree = judge(t, KEY_A, "", recorded, "expect", {"web-01": [fingerprint(KEY_B)]})
    assert disagree.status == "mismatch" and "but the --expect file says" in disagree.message


def test_exit_codes() -> None:
    def rows(*statuses: str) -> list[KeyRow]:
        return [KeyRow("h", "h", "t", "f", s) for s in statuses]

    assert exit_code(rows("known", "accepted", "verified")) == 0
    assert exit_code(rows("known", "unknown")) == 1
    assert exit_code(rows("known", "changed")) == 1
    assert exit_code(rows("mismatch", "not_expected")) == 1
    assert exit_code(rows("changed", "unreachable")) == 4


def test_append_writes_under_lock_and_never_adds_a_second_key(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "known_hosts"
    assert append_known_hosts(path, [("10.0.0.5", KEY_A), ("[10.0.0.6]:2222", KEY_B)]) == ["10.0.0.5",
                                                                                          "[10.0.0.6]:2222"]
    assert append_known_hosts(path, [("10.0.0.5", KEY_B)]) == []  # someone recorded it meanwhile: left alone
    loaded = load_known_hosts([path])[path]
    assert loaded.lookup("10.0.0.5").matches(KEY_A.get_name(), KEY_A.asbytes())
    assert loaded.lookup("[10.0.0.6]:2222").matches(KEY_B.get_name(), KEY_B.asbytes())
    assert len(path.read_text().splitlines()) == 2
