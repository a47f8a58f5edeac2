"""Declared parameters: the deep merge and its origins, typos with suggestions, typed formats, and a fuzz set of
hostile values for every parameter of every control (each is a usage error before any connection)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from hardnir import cli, hostdata
from hardnir.control import catalogue
from hardnir.inventory import files_of, init_nornir
from hardnir.params import SHARED, Param, ParamError, parse_listen
from hardnir.ssh import HardnirConnection

EXAMPLE = Path(__file__).resolve().parents[2] / "inventory"


def write(root: Path, hosts: Any, groups: Any = None, defaults: Any = None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, data in (("hosts.yaml", hosts), ("groups.yaml", groups or {}), ("defaults.yaml", defaults or {})):
        (root / name).write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    return root


def problems(inv: Path) -> list[str]:
    return hostdata.check_inventory(init_nornir(inv), files_of(inv))


def effective(inv: Path, host: str) -> dict[str, Any]:
    nr = init_nornir(inv)
    return hostdata.effective(nr.inventory.hosts[host], list(catalogue().values()))


def test_the_worked_example_group_policy_survives_a_host_listen(tmp_path: Path) -> None:
    inv = write(tmp_path / "inv",
                {"worker-01": {"hostname": "10.20.1.21", "groups": ["production"],
                               "data": {"sshd_socket": {"listen": ["10.20.1.21:22"]}}}},
                {"production": {"data": {"sshd_socket": {"policy": "disabled"}}}})
    assert problems(inv) == []
    sshd = effective(inv, "worker-01")["sshd-socket"]
    assert sshd["policy"] == {"value": "disabled", "from": "group production"}
    assert sshd["listen"] == {"value": ["10.20.1.21:22"], "from": "host worker-01"}


def test_the_shipped_example_inventory_is_valid_and_merges() -> None:
    assert problems(EXAMPLE) == []
    params = effective(EXAMPLE, "worker-01")
    assert params["fleet-socket"]["policy"]["from"] == "group production"
    assert params["sshd-socket"]["listen"]["from"] == "host worker-01"
    assert params["fleet-etcd-tls"]["etcd_tls.ca_file"]["from"] == "defaults.yaml"


def test_group_order_defaults_and_lists_replace(tmp_path: Path) -> None:
    inv = write(
        tmp_path / "inv",
        {"h": {"hostname": "10.0.0.1", "groups": ["first", "second"]}},
        {"first": {"groups": ["parent"], "data": {"fleet_socket": {"policy": "mask"}}},
         "parent": {"data": {"fleet_socket": {"socket": "/run/parent.sock"},
                             "sshd_socket": {"listen": ["1.1.1.1:22"]}}},
         "second": {"data": {"fleet_socket": {"policy": "restricted", "socket": "/run/second.sock"},
                             "sshd_socket": {"listen": ["2.2.2.2:22", "3.3.3.3:22"]}}}},
        {"data": {"sshd_socket": {"listen": ["9.9.9.9:22", "8.8.8.8:22"]}, "core_docker": {"user": "ops"}}},
    )
    params = effective(inv, "h")
    # first beats second; first's parent comes right after first, so it beats second too
    assert params["fleet-socket"]["policy"] == {"value": "mask", "from": "group first"}
    assert params["fleet-socket"]["socket"] == {"value": "/run/parent.sock", "from": "group parent"}
    assert params["sshd-socket"]["listen"] == {"value": ["1.1.1.1:22"], "from": "group parent"}  # replaced, not added
    assert params["core-docker"]["user"] == {"value": "ops", "from": "defaults.yaml"}
    assert params["core-docker"]["socket"] == {"value": "/run/docker.sock", "from": "default"}


def test_runtime_params_use_the_deep_merge(tmp_path: Path) -> None:
    inv = write(tmp_path / "inv",
                {"w": {"hostname": "10.0.0.5", "groups": ["prod"],
                       "data": {"sshd_socket": {"listen": ["10.0.0.5:22"]}}}},
                {"prod": {"data": {"sshd_socket": {"policy": "disabled"}}}})
    host = init_nornir(inv).inventory.hosts["w"]
    params = hostdata.control_params(host, catalogue()["sshd-socket"])
    assert params["policy"] == "disabled" and params["listen"] == ["10.0.0.5:22"]


@pytest.mark.parametrize(("groups", "expected"), [
    ({"prod": {"data": {"sshd_socket": {"policy": "disable"}}}},
     ["groups.yaml: group 'prod'", "sshd-socket", "sshd_socket.policy", "restricted or disabled",
      "did you mean 'disabled'"]),
    ({"prod": {"data": {"fleet_socket": {"polcy": "mask"}}}},
     ["groups.yaml: group 'prod'", "fleet_socket.polcy", "unknown key", "did you mean 'policy'"]),
    ({"prod": {"data": {"sshd_sockets": {"policy": "disabled"}}}},
     ["groups.yaml: group 'prod'", "'sshd_sockets'", "did you mean 'sshd_socket'"]),
    ({"prod": {"connection_options": {"hardnir": {"extras": {"host_key_policy": "stirct"}}}}},
     ["groups.yaml: group 'prod'", "host_key_policy", "strict or accept-new", "did you mean 'strict'"]),
    ({"prod": {"data": {"etcd_tls": {"ca_file": "relative/ca.pem"}}}},
     ["etcd_tls.ca_file", "absolute, normalised path"]),
    ({"prod": {"data": {"hardnir_deadman_seconds": 2}}}, ["hardnir_deadman_seconds", "from 5 to 3600"]),
    ({"prod": {"data": {"fleet_etcd_tls": {"etcd_servers": "http://10.0.0.1:2379"}}}}, ["must start with https://"]),
    ({"prod": {"data": {"hardnir_fallback": {"username": "ops", "prot": 22}}}}, ["did you mean 'port'"]),
])
def test_typos_and_bad_values_are_named(tmp_path: Path, groups: dict[str, Any], expected: list[str]) -> None:
    inv = write(tmp_path / "inv", {"h": {"hostname": "10.0.0.1", "groups": ["prod"]}}, groups)
    found = problems(inv)
    assert len(found) == 1, found
    for text in expected:
        assert text in found[0], (text, found[0])
    assert str(inv / "groups.yaml") in found[0]


def test_old_spelling_restrict_is_accepted_as_restricted(tmp_path: Path) -> None:
    inv = write(tmp_path / "inv", {"h": {"hostname": "10.0.0.1", "data": {"fleet_socket": {"policy": "restrict"}}}})
    assert problems(inv) == []
    assert effective(inv, "h")["fleet-socket"]["policy"]["value"] == "restricted"


def test_other_tools_data_is_left_alone(tmp_path: Path) -> None:
    inv = write(tmp_path / "inv", {"h": {"hostname": "10.0.0.1", "data": {"lab_profile": {"x": 1}, "site": "ams"}}})
    assert problems(inv) == []


@pytest.mark.parametrize(("entry", "parsed"), [
    ("10.0.0.1:22", ("10.0.0.1", "22")), ("[fd00::1]:2222", ("fd00::1", "2222")), ("22", ("", "22")),
])
def test_listen_entries_parse(entry: str, parsed: tuple[str, str]) -> None:
    assert parse_listen(entry) == parsed


def test_address_placeholder_is_filled_only_with_an_address(tmp_path: Path) -> None:
    control = catalogue()["sshd-socket"]
    assert control.params({}, "10.0.0.7")["listen"] == ["10.0.0.7:22"]
    assert control.params({}, "fd00::7")["listen"] == ["[fd00::7]:22"]
    weird = control.params({}, "127.0.0.1;touch /tmp/x")["listen"]
    assert weird == ["{address}:22"]  # kept as a placeholder: the fix is blocked, nothing is written
    assert catalogue()["fleet-etcd-tls"].params({}, "etcd.example.net")["etcd_servers"] == "https://etcd.example.net:2379"


HOSTILE = [
    "x\nExecStartPre=/bin/touch /root/PWNED",
    "198.18.1.11:22\nExecStartPre=/bin/touch /root/PWNED-by-inventory",
    "/etc/ssl/a\nExecStart=/bin/sh",
    'https://10.0.0.1:2379" "ExecStart=/bin/sh',
    "/etc/ssl/%n.pem",
    "https://10.0.0.1:2379/%h",
    "/etc/ssl/$(touch /tmp/pwned).pem",
    "https://$(id):2379",
    "/etc/ssl/`id`.pem",
    "10.0.0.1:22`id`",
    "/etc/ssl/ca\x00.pem",
    "/etc/ssl/../shadow",
    "core;id",
    "/" + "a" * 5000,
    "https://" + "a" * 5000 + ":2379",
    "'; rm -rf /",
]


def every_param() -> list[tuple[str, tuple[str, ...], Param]]:
    """(control id, key path in host data, declaration) for every parameter of every control and shared one."""
    out = []
    for control in catalogue().values():
        out += [(control.id, (control.param_key, p.name), p) for p in control.fields]
        for name in control.shared:
            shared = SHARED[name]
            out += [(control.id, (name, f.name), f) for f in shared.fields] or [(control.id, (name,), shared)]
    return out


def nest(path: tuple[str, ...], value: Any) -> dict[str, Any]:
    return {path[0]: value} if len(path) == 1 else {path[0]: nest(path[1:], value)}


@pytest.mark.parametrize(("control_id", "path", "param"), every_param(),
                         ids=[f"{c}:{'.'.join(p)}" for c, p, _ in every_param()])
def test_hostile_values_are_refused_for_every_parameter(control_id: str, path: tuple[str, ...],
                                                         param: Param) -> None:
    control = catalogue()[control_id]
    for value in [*HOSTILE, {"a": 1}, [["nested"]], -1, 10**9]:
        for shaped in ([value, [value]] if param.kind == "listen_list" else [value]):
            with pytest.raises(ParamError) as err:
                control.params(nest(path, shaped), "10.0.0.1")
            assert ".".join(path) in str(err.value)


def test_hostile_values_through_the_cli_exit_2_without_connecting(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    opened: list[str] = []
    monkeypatch.setattr(HardnirConnection, "open", lambda self, *a, **k: opened.append(str(a)))
    seen = set()
    for n, (_, path, _param) in enumerate(every_param()):
        if path in seen:
            continue
        seen.add(path)
        for m, value in enumerate(HOSTILE):
            inv = write(tmp_path / f"inv-{n}-{m}", {"h": {"hostname": "198.19.255.254", "data": nest(path, value)}})
            for command in ("audit", "remediate"):
                code = cli.main([command, "-i", str(inv), "--quiet", "--out", str(tmp_path / f"run-{n}-{m}")])
                err = capsys.readouterr().err
                assert code == 2, (path, value, err)
                assert err.count("\n") == 1 and "Traceback" not in err
                assert ".".join(path) in err, err
    assert opened == []
    assert not any(tmp_path.glob("run-*/results.csv"))


def test_the_reported_injection_never_reaches_a_drop_in(tmp_path: Path) -> None:
    """The issue's exploit: a listen entry with a newline and ExecStartPre= is a usage error naming the host."""
    inv = write(tmp_path / "inv", {"lab-01": {"hostname": "198.19.1.11", "data": {"sshd_socket": {
        "listen": ["198.18.1.11:22\nExecStartPre=/bin/touch /root/PWNED-by-inventory"]}}}})
    with pytest.raises(ParamError) as err:
        hostdata.validate(init_nornir(inv), files_of(inv))
    text = str(err.value)
    assert "hosts.yaml: host 'lab-01'" in text and "sshd-socket: sshd_socket.listen" in text
    assert "\n" not in text


def test_template_values_are_filled_per_address_and_bad_ones_refused_every_time() -> None:
    """The template parsers are memoised: a value is still filled with each host's own address, and a bad value
    is a problem on every host, not only the first."""
    from hardnir.params import check_value

    urls = Param("endpoints", "url_list", None, "etcd endpoints")
    listen = Param("listen", "listen_list", None, "listen entries")
    for address in ("198.19.0.1", "198.19.0.2", "198.19.0.1"):
        assert check_value(urls, "https://{address}:2379", ("x",), address) == (f"https://{address}:2379", [])
        assert check_value(listen, ["{address}:22"], ("x",), address) == ([f"{address}:22"], [])
    for _ in range(2):
        assert check_value(urls, "http://{address}:2379", ("x",), "198.19.0.1")[1]
        assert check_value(listen, ["{address}:99999"], ("x",), "198.19.0.1")[1]
        assert check_value(listen, ["{address}:22", 22], ("x",), "198.19.0.1")[1]  # a number is not text
