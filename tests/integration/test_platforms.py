"""Flatcar and Fedora CoreOS hosts of the mixed lab: platform verdicts over the fleet, and the full control
lifecycle (fail, dry run, fix, verify, idempotent, rollback) where the platforms differ.

The test lab is mixed (`hardnir lab up --platform mixed`): host 1 is the vanilla Container Linux host, hosts 2 and
3 the vanilla Flatcar and Fedora CoreOS hosts (`hardnir.lab.profiles`); the rest are drawn from the seed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hardnir import api
from hardnir.lab import LabHost, LabInfo, lab_exec, reset_host
from tests.integration.test_controls import inventory_for, lifecycle, one

pytestmark = pytest.mark.lab

FALLBACK = {"hardnir_fallback": {"username": "ops"}}


def vanilla_host(lab: LabInfo, platform: str) -> LabHost:
    for host in lab.hosts:
        if host.profile.get("os") == platform and all(
                v in ("vanilla", "missing", platform) for v in host.profile.values()):
            return host
    pytest.skip(f"no vanilla {platform} host in this lab (seed {lab.seed}, {len(lab.hosts)} hosts)")


def test_fleet_audit_judges_each_host_on_its_platform(lab: LabInfo, tmp_path: Path) -> None:
    """One audit of every host: the platform column matches the seeded os, and a control outside a host's
    platforms is not_applicable with the reason, never fail."""
    outcome = api.execute("audit", lab.inventory_dir, controls="fleet-socket,core-rkt,etcd-tls,zincati-tls",
                          out=tmp_path / "audit")
    expected_platform = {h.name: h.profile["os"] for h in lab.hosts}
    rows = [r for r in outcome.rows if r["host"] in expected_platform]
    assert {r["host"] for r in rows} == set(expected_platform)
    reasons = {
        ("flatcar", "fleet-socket"): "fleet is not part of Flatcar",
        ("fcos", "fleet-socket"): "fleet is not part of Fedora CoreOS",
        ("flatcar", "core-rkt"): "rkt is not part of Flatcar",
        ("fcos", "core-rkt"): "rkt is not part of Fedora CoreOS",
        ("fcos", "etcd-tls"): "etcd is not part of Fedora CoreOS",
        ("coreos", "zincati-tls"): "Zincati is not part of Container Linux",
        ("flatcar", "zincati-tls"): "Zincati is not part of Flatcar",
    }
    for row in rows:
        platform = expected_platform[str(row["host"])]
        assert row["platform"] == platform, row
        assert row["platform_version"] == {"coreos": "1235.9.0", "flatcar": "3510.2.1", "fcos": "40"}[platform]
        reason = reasons.get((platform, str(row["control"])))
        if reason:
            assert (row["status"], reason) == ("not_applicable", reason) or reason in str(row["message"]), row
            assert row["status"] == "not_applicable", row
    fcos_verdicts = {str(r["host"]): r["status"] for r in rows if r["control"] == "zincati-tls"
                     and expected_platform[str(r["host"])] == "fcos"}
    seeded = {h.name: h.profile["zincati"] for h in lab.hosts if h.profile["os"] == "fcos"}
    want = {"vanilla": "fail", "tls": "pass", "immediate": "not_applicable"}
    assert fcos_verdicts == {name: want[value] for name, value in seeded.items()}


# (platform, control, host data): where the platforms differ. Container Linux's lifecycles are test_controls.py's.
CASES = [
    ("flatcar", "locksmith-etcd-tls", {}),  # /etc/flatcar/update.conf, etcd-member.service
    ("flatcar", "sshd-socket", {}),  # sshd.socket; the /etc/ssh/sshd_config symlink stays untouched
    ("fcos", "sshd-socket", {}),  # sshd.service restricted through sshd_config.d, sshd -t, dead-man timer
    ("fcos", "core-wheel", FALLBACK),  # sudo from coreos-sudo-group through the sudo group
    ("fcos", "zincati-tls", {}),  # FleetLock base_url over https
]


@pytest.mark.parametrize(("platform", "control", "data"), CASES, ids=[f"{p}:{c}" for p, c, _ in CASES])
def test_platform_lifecycle(lab: LabInfo, tmp_path: Path, platform: str, control: str, data: dict[str, Any]) -> None:
    host = vanilla_host(lab, platform)
    reset_host(host.name)
    try:
        lifecycle(lab, tmp_path, control, data, host=host.name)
        if (platform, control) == ("flatcar", "sshd-socket"):
            link = lab_exec(host.name, "readlink /etc/ssh/sshd_config").stdout.strip()
            assert link == "/usr/share/ssh/sshd_config"
    finally:
        reset_host(host.name)


def test_fcos_sshd_fix_sorts_first_and_survives_sshd_t(lab: LabInfo, tmp_path: Path) -> None:
    """After the fix sshd really listens on the host address only, from a drop-in read before FCOS's own files."""
    host = vanilla_host(lab, "fcos")
    reset_host(host.name)
    try:
        inv = inventory_for(lab, tmp_path, host.name, hardnir_deadman_seconds=60)
        fixed = api.execute("remediate", inv, controls="sshd-socket", out=tmp_path / "fix")
        assert one(fixed, "sshd-socket", "fix")["status"] == "fixed"
        files = lab_exec(host.name, "ls /etc/ssh/sshd_config.d/").stdout.split()
        assert files[0] == "05-hardnir-listen.conf" and "40-disable-passwords.conf" in files, files
        live = lab_exec(host.name, "ss -Hltn 'sport = :22'").stdout.split()
        assert f"{host.address}:22" in live and "0.0.0.0:22" not in live and "[::]:22" not in live, live
        assert lab_exec(host.name, "sshd -t").returncode == 0
    finally:
        reset_host(host.name)
