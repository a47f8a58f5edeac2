"""Platforms: detection from os-release, the not_applicable gate, the result columns, and the lab's platform mix."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from hardnir import platforms
from hardnir.control import catalogue
from hardnir.facts import Facts, parse_env_file
from hardnir.lab.profiles import DIMENSIONS, LAB_PLATFORMS, PLATFORMS, draw_profiles
from hardnir.probe import Item
from tests.unit.test_controls import load_base

FLATCAR = 'NAME="Flatcar Container Linux by Kinvolk"\nID=flatcar\nID_LIKE=coreos\nVERSION_ID=3510.2.1\n'
FCOS = 'NAME="Fedora Linux"\nID=fedora\nVERSION_ID=40\nVARIANT_ID=coreos\n'
UBUNTU = 'NAME="Ubuntu"\nID=ubuntu\nVERSION_ID="24.04"\n'


@pytest.mark.parametrize(("release", "expected"), [
    ({"ID": "coreos"}, "coreos"),
    ({"ID": "flatcar", "ID_LIKE": "coreos"}, "flatcar"),
    ({"ID": "fedora", "VARIANT_ID": "coreos"}, "fcos"),
    ({"ID": "fedora", "VARIANT_ID": "workstation"}, "fedora"),
    ({"ID": "ubuntu"}, "ubuntu"),
    ({}, "unknown"),
])
def test_platform_of_os_release(release: dict[str, str], expected: str) -> None:
    assert platforms.platform_of(release) == expected


def facts_on(release: str, base: str = "coreos-vanilla") -> Facts:
    items = load_base(base)
    items["cmd:os-release"] = Item(0 if release else 1, release)
    return Facts(items, host="fixture", address="198.19.1.1")


def check(control_id: str, facts: Facts, data: dict[str, Any] | None = None) -> Any:
    control = catalogue()[control_id]
    params = control.params(data or {}, "198.19.1.1")
    return control, params, control.check(facts, params)


def test_facts_know_platform_and_version() -> None:
    facts = facts_on(FLATCAR)
    assert (facts.platform, facts.platform_version) == ("flatcar", "3510.2.1")
    assert facts_on(FCOS).platform == "fcos"
    assert facts_on("").platform == "unknown"


@pytest.mark.parametrize(("control_id", "release", "reason"), [
    ("fleet-socket", FLATCAR, "fleet is not part of Flatcar"),
    ("fleet-etcd-tls", FCOS, "fleet is not part of Fedora CoreOS"),
    ("core-rkt", FLATCAR, "rkt is not part of Flatcar"),
    ("etcd-tls", FCOS, "etcd is not part of Fedora CoreOS"),
    ("locksmith-etcd-tls", FCOS, "locksmith is not part of Fedora CoreOS"),
    ("zincati-tls", FLATCAR, "Zincati is not part of Flatcar"),
])
def test_a_control_outside_its_platforms_is_not_applicable_and_never_fixed(control_id: str, release: str,
                                                                           reason: str) -> None:
    # The vanilla Container Linux facts fail every control; only the os-release differs.
    control, params, finding = check(control_id, facts_on(release))
    assert finding.status == "not_applicable", finding
    assert reason in finding.message
    assert finding.evidence["platform"] == platforms.platform_of(dict(
        line.split("=", 1) for line in release.splitlines()))
    assert control.plan_fix(facts_on(release), params).empty


def test_an_unknown_platform_is_judged_on_the_facts_with_a_note() -> None:
    _, _, finding = check("fleet-socket", facts_on(UBUNTU))
    assert finding.status == "fail"
    assert "platform ubuntu 24.04 is not one hardnir knows" in finding.message
    _, _, finding = check("fleet-socket", facts_on(""))
    assert finding.status == "fail" and "no os-release is not one hardnir knows" in finding.message


def test_a_known_platform_inside_the_list_gets_no_note() -> None:
    _, _, finding = check("fleet-socket", facts_on("ID=coreos\nVERSION_ID=1235.9.0\n"))
    assert finding.status == "fail" and "hardnir knows" not in finding.message


def test_every_row_of_a_host_gets_the_platform_columns() -> None:
    rows: list[dict[str, object]] = [{"host": "a"}, {"host": "a", "platform": "stale"}]
    platforms.stamp(rows, "flatcar", "3510.2.1")
    assert all((r["platform"], r["platform_version"]) == ("flatcar", "3510.2.1") for r in rows)
    assert platforms.stamp([{"host": "b"}])[0]["platform"] == ""


def test_every_control_names_known_platforms_and_says_why_not_elsewhere() -> None:
    for control in catalogue().values():
        assert set(control.meta.platforms) <= set(platforms.KNOWN), control.id
        missing = set(platforms.KNOWN) - set(control.meta.platforms) - set(control.platform_notes)
        assert not missing, f"{control.id}: no PLATFORM_NOTES reason for {missing}"


@pytest.mark.parametrize("platform", PLATFORMS)
def test_lab_single_platform(platform: str) -> None:
    profiles = draw_profiles(20, 7, platform)
    assert {p["os"] for p in profiles} == {platform}
    assert all(v == "vanilla" for k, v in profiles[0].items() if k != "os" and v != "missing")


def test_lab_mixed_has_vanilla_hosts_of_each_platform_first_and_platform_rules_hold() -> None:
    profiles = draw_profiles(20, 7)
    assert [p["os"] for p in profiles[:3]] == list(PLATFORMS)
    assert {p["os"] for p in profiles[3:]} == set(PLATFORMS)
    for profile in profiles:
        if profile["os"] != "coreos":
            assert profile["fleet"] == "missing", profile
        if profile["os"] == "fcos":
            assert profile["etcd"] == "missing" and profile["zincati"] != "missing", profile
        else:
            assert profile["zincati"] == "missing", profile
    for dim in ("sshd", "etcd", "fleet", "groups", "docker"):
        assert {p[dim] for p in profiles} == set(DIMENSIONS[dim]), dim
    assert draw_profiles(20, 7) == profiles  # deterministic
    assert "mixed" in LAB_PLATFORMS


def test_lab_rejects_an_unknown_platform() -> None:
    with pytest.raises(ValueError, match="unknown platform"):
        draw_profiles(3, 1, "ubuntu")


@pytest.mark.parametrize("release", [
    'NAME="Fedora Linux"\nID=fedora\nVARIANT_ID=coreos\n',
    "ID=\"fedora\"\nVARIANT_ID='coreos'",  # quoted values, no final newline
    "ID=fedora\nVARIANT_ID=server\n",
    "ID=flatcar\nVERSION_ID=3510.2.0\n",
    "ID=coreos\n",
    "",
])
def test_release_test_in_shell_agrees_with_platform_of(release: str, tmp_path: Path) -> None:
    os_release = tmp_path / "os-release"
    os_release.write_text(release)
    for platform in ("fcos", "flatcar", "coreos"):
        test = platforms.release_test(platform).replace("/etc/os-release", str(os_release))
        shell = subprocess.run(["sh", "-c", f"NL='\n'; if {test}; then echo yes; else echo no; fi"],
                               capture_output=True, text=True, check=True).stdout.strip()
        assert (shell == "yes") == (platforms.platform_of(parse_env_file(release)) == platform), (platform, shell)
