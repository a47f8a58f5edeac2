"""The second wall: values escaped where they are written, and every planned file re-parsed against its shape."""

from __future__ import annotations

import pytest

from hardnir import etcd, filesafe
from hardnir.control import catalogue
from tests.unit.test_controls import build_facts


def test_environment_values_are_quoted_and_escaped() -> None:
    line = filesafe.environment_line("ETCD_CERT_FILE", 'a" ExecStart=/bin/sh \\ 100%')
    assert line == 'Environment="ETCD_CERT_FILE=a\\" ExecStart=/bin/sh \\\\ 100%%"\n'
    words = filesafe.split_systemd_words(line.split("=", 1)[1].rstrip("\n"))
    assert words == ['ETCD_CERT_FILE=a" ExecStart=/bin/sh \\ 100%%']  # one assignment; %% is systemd's %


@pytest.mark.parametrize("value", ["a\nExecStart=/bin/sh", "a\rb", "a\x00b", "a\x1b[31m"])
def test_newlines_and_control_characters_are_refused_not_escaped(value: str) -> None:
    with pytest.raises(filesafe.UnsafeValue):
        filesafe.environment_line("X", value)
    with pytest.raises(filesafe.UnsafeValue):
        filesafe.systemd_value(value)
    with pytest.raises(filesafe.UnsafeValue):
        filesafe.config_word(value, "sudoers")


def test_systemd_values_escape_specifiers_and_refuse_continuations() -> None:
    assert filesafe.systemd_value("/run/%n.sock") == "/run/%%n.sock"
    with pytest.raises(filesafe.UnsafeValue):
        filesafe.systemd_value("10.0.0.1:22\\")
    with pytest.raises(filesafe.UnsafeValue):
        filesafe.environment_line("BAD-NAME", "x")


def test_sudoers_and_sshd_config_words() -> None:
    assert filesafe.config_word("core", "sudoers") == "core"
    assert filesafe.config_word("a,b:c=d e!", "sudoers") == "a\\,b\\:c\\=d\\ e\\!"
    assert filesafe.config_word("a b", "sshd_config") == '"a b"'
    with pytest.raises(filesafe.UnsafeValue):
        filesafe.config_word('a"b', "sshd_config")


SOCKET = filesafe.DropinShape("Socket", frozenset({"ListenStream", "FreeBind"}))


@pytest.mark.parametrize(("content", "problem"), [
    ("[Socket]\nListenStream=\nListenStream=10.0.0.1:22\nExecStartPre=/bin/touch /root/PWNED\n", "ExecStartPre"),
    ("[Socket]\nListenStream=10.0.0.1:22 \\\nExecStartPre=/bin/x\n", "continuation"),
    ("[Service]\nListenStream=10.0.0.1:22\n", "section [Service]"),
    ("ListenStream=10.0.0.1:22\n", "not a directive in a section"),
    ("[Socket]\nListenStream=10.0.0.1:22\x00\n", "control character"),
])
def test_a_drop_in_with_anything_unintended_is_refused(content: str, problem: str) -> None:
    found = SOCKET.problems(content)
    assert found and problem in found[0]


def test_environment_drop_ins_only_set_declared_variables() -> None:
    shape = filesafe.DropinShape("Service", frozenset({"Environment"}), frozenset({"A"}))
    assert shape.problems('[Service]\nEnvironment="A=1"\n') == []
    assert "variable B" in shape.problems('[Service]\nEnvironment="A=1" "B=2"\n')[0]
    assert "unterminated" in shape.problems('[Service]\nEnvironment="A=1\n')[0]


def test_plans_are_refused_when_validation_is_bypassed() -> None:
    """Even with hand-made, unvalidated params the hostile value never reaches a planned file."""
    facts = build_facts({"name": "vanilla", "base": "coreos-vanilla"})
    sshd = catalogue()["sshd-socket"]
    params = sshd.params({}, "198.19.1.1")
    params["listen"] = ["198.19.1.1:22\nExecStartPre=/bin/touch /root/PWNED"]
    plan = sshd.plan_fix(facts, params)
    assert plan.blocked.startswith("refused:") and not plan.steps and "PWNED" not in plan.describe()

    fleet = catalogue()["fleet-etcd-tls"]
    params = fleet.params({"etcd_tls": {"ca_file": "/etc/ssl/etcd/ca.pem", "client_cert_file": "/c.pem",
                                        "client_key_file": "/k.pem"}}, "198.19.1.1")
    params["etcd_tls"] = {**params["etcd_tls"], "ca_file": '/x" "FLEET_ETCD_SERVERS=http://evil'}
    plan = fleet.plan_fix(facts, params)
    content = next(s.content for s in plan.steps if hasattr(s, "content"))
    words = [w for _, _, value in filesafe.parse_unit(content) for w in filesafe.split_systemd_words(value)]
    assert [w.partition("=")[0] for w in words] == [  # the quote is escaped: still one value of CAFILE
        "FLEET_ETCD_SERVERS", "FLEET_ETCD_CAFILE", "FLEET_ETCD_CERTFILE", "FLEET_ETCD_KEYFILE"]
    assert 'FLEET_ETCD_CAFILE=/x" "FLEET_ETCD_SERVERS=http://evil' in words


def test_undeclared_files_are_refused() -> None:
    assert "not a file this control declares" in filesafe.vet_files([("/etc/passwd", "x")], {})
    assert filesafe.vet_files([("/etc/x.d/a.conf", "[Socket]\nFreeBind=true\n")], {"/etc/x.d/*.conf": SOCKET}) == ""


def test_env_dropin_round_trips() -> None:
    content = etcd.env_dropin({"ETCD_CERT_FILE": "/etc/ssl/etcd/server.pem"})
    assert filesafe.parse_unit(content) == [("Service", "Environment", '"ETCD_CERT_FILE=/etc/ssl/etcd/server.pem"')]
