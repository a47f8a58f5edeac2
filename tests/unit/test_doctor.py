"""`hardnir doctor`'s verdict: the rows of one host from what was observed on it (pure), and its output."""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import pytest

from hardnir.control import catalogue
from hardnir.doctor import (
    CHECKS,
    INFO_SCRIPT,
    PROBE_COMMANDS,
    DoctorRow,
    Observation,
    exit_code,
    judge,
    parse_info,
    render,
)

FLATCAR = {"ID": "flatcar", "VERSION_ID": "4081.2.0", "NAME": "Flatcar Container Linux by Kinvolk"}
READY = Observation(address="10.0.0.5", login_user="core", host_key="SHA256:abc", sudo_error="", missing=(),
                    os_release=FLATCAR, skew_s=0.4, skew_uncertainty_s=0.05)


def by_check(rows: list[DoctorRow]) -> dict[str, DoctorRow]:
    assert [r.check for r in rows] == list(CHECKS)
    return {r.check: r for r in rows}


def test_a_ready_host_is_all_ok() -> None:
    rows = by_check(judge("web-01", READY))
    assert {r.status for r in rows.values()} == {"ok"}
    assert rows["login"].detail == "core@10.0.0.5, host key SHA256:abc"
    assert rows["sudo"].detail == "sudo -n works for core"
    assert rows["platform"].detail == "Flatcar Container Linux 4081.2.0 (ID=flatcar)"
    assert rows["clock"].detail == "skew +0.4 s (±0.1 s)"
    assert exit_code(list(rows.values())) == 0


@pytest.mark.parametrize(("error", "fix"), [
    ("10.0.0.5: unknown host key ssh-ed25519 SHA256:x (not in /f/known_hosts); refusing",
     "hardnir keys scan -i inv --accept"),
    ("10.0.0.5: host key CHANGED (ssh-ed25519 SHA256:x) and differs from /f/known_hosts; refusing",
     "hardnir keys check -i inv"),
    ("10.0.0.5: unknown host key ssh-ed25519 SHA256:x (not in /f/known_hosts); refusing",
     "hardnir keys scan --config c.yaml --accept"),
    ("10.0.0.5: authentication failed for user core (key /k rejected)", "authorized_keys"),
    ("10.0.0.5: connection timed out after 10s", "check the hostname and port"),
    ("web: cannot resolve host name (Name or service not known)", "does not resolve"),
])
def test_a_failed_login_has_its_fix_and_skips_the_rest(error: str, fix: str) -> None:
    source = "--config c.yaml" if "--config" in fix else "-i inv"
    rows = by_check(judge("web-01", Observation(address="10.0.0.5", login_error=error), inventory_args=source))
    assert rows["login"].status == "fail" and rows["login"].detail == error and fix in rows["login"].fix
    assert [r.status for r in rows.values()][1:] == ["skipped"] * 4
    assert exit_code(list(rows.values())) == 4


def test_sudo_that_needs_a_password() -> None:
    seen = Observation(**{**READY.__dict__, "sudo_error": "sudo: a password is required"})
    row = by_check(judge("web-01", seen))["sudo"]
    assert row.status == "fail" and row.detail == "sudo as core fails: sudo: a password is required"
    assert "NOPASSWD" in row.fix and "sudo_password_env" in row.fix
    assert exit_code(judge("web-01", seen)) == 1
    wrong = Observation(**{**READY.__dict__, "sudo_error": "Sorry, try again.", "sudo_password": True})
    assert "check the password in sudo_password_env" in by_check(judge("web-01", wrong))["sudo"].fix
    right = Observation(**{**READY.__dict__, "sudo_password": True})
    detail = by_check(judge("web-01", right))["sudo"].detail
    assert detail == "sudo with the password from sudo_password_env works for core"
    root = Observation(**{**READY.__dict__, "login_user": "root", "sudo_error": None})
    assert by_check(judge("web-01", root))["sudo"].status == "ok"


def test_missing_commands_name_their_packages() -> None:
    seen = Observation(**{**READY.__dict__, "missing": ("curl", "ss", "ip")})
    row = by_check(judge("web-01", seen))["commands"]
    assert row.status == "fail" and row.detail.endswith(": curl ss ip")
    assert row.fix == "install curl, iproute2 on the host (or use an image that has them)"


def test_commands_that_cannot_run_skip_platform_and_clock() -> None:
    seen = Observation(**{**READY.__dict__, "missing": None, "read_error": "sh: 1: timeout: not found"})
    rows = by_check(judge("web-01", seen))
    assert rows["commands"].status == "fail" and "timeout" in rows["commands"].fix
    assert rows["platform"].status == rows["clock"].status == "skipped"


@pytest.mark.parametrize(("release", "status", "words"), [
    ({"ID": "coreos", "VERSION_ID": "1235.9.0"}, "warn", "end of life since 26 May 2020"),
    ({"ID": "fedora", "VARIANT_ID": "coreos", "VERSION_ID": "41"}, "ok", "Fedora CoreOS 41 (ID=fedora)"),
    ({"ID": "debian", "VERSION_ID": "12", "NAME": "Debian GNU/Linux"}, "warn", "not a CoreOS-family platform"),
    ({}, "warn", "no /etc/os-release"),
])
def test_platform(release: dict[str, str], status: str, words: str) -> None:
    row = by_check(judge("h", Observation(**{**READY.__dict__, "os_release": release})))["platform"]
    assert row.status == status and words in row.detail
    if release.get("ID") == "coreos":
        assert "Flatcar" in row.fix and "Fedora CoreOS" in row.fix


@pytest.mark.parametrize(("skew", "uncertainty", "status"), [
    (0.0, 0.0, "ok"), (-4.9, 0.0, "ok"), (5.5, 1.0, "ok"), (-6.0, 0.1, "warn"), (299.0, 0.0, "warn"),
    (-301.0, 0.2, "fail"), (None, 0.0, "warn"),
])
def test_clock(skew: float | None, uncertainty: float, status: str) -> None:
    seen = Observation(**{**READY.__dict__, "skew_s": skew, "skew_uncertainty_s": uncertainty})
    assert by_check(judge("h", seen))["clock"].status == status


def test_exit_code_and_render_group_fixes() -> None:
    coreos = Observation(**{**READY.__dict__, "os_release": {"ID": "coreos", "VERSION_ID": "1"}})
    rows = [r for i in range(7) for r in judge(f"h{i}", coreos)]
    assert exit_code(rows) == 0  # warnings only: ready
    out = render(rows)
    assert out.count("end of life") == 7  # the table says it per host ...
    assert "platform warn on h0, h1, h2, h3, h4 and 2 more: migrate" in out  # ... the fix once
    assert out.endswith("ready: 7 of 7 hosts")
    rows += judge("h7", Observation(**{**READY.__dict__, "missing": ("curl",)}))
    assert exit_code(rows) == 1 and render(rows).endswith("ready: 7 of 8 hosts")


def test_parse_info_of_the_real_script_on_this_machine() -> None:
    started = time.time()
    done = subprocess.run(["sh", "-c", INFO_SCRIPT], capture_output=True, text=True, timeout=30, check=True)
    missing, release, clock = parse_info(done.stdout)
    assert set(missing) <= set(PROBE_COMMANDS) and "sh" not in missing
    assert release.get("ID")  # this machine has an os-release too
    assert clock is not None and abs(clock - started) < 5


def test_parse_info_reads_missing_commands_and_a_date_without_nanoseconds() -> None:
    missing, release, clock = parse_info('missing=curl\nmissing=setpriv\nclock=1700000000.%N\nos:ID="flatcar"\n'
                                         "os:VERSION_ID=4081.2.0\nos:# comment\n")
    assert missing == ("curl", "setpriv") and clock == 1700000000.0
    assert release == {"ID": "flatcar", "VERSION_ID": "4081.2.0"}


def test_the_readme_lists_the_probe_commands_and_each_platforms_controls() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    needs = readme.split("**What a target host needs:**", 1)[1].split("\n\n", 1)[0]
    listed = needs.split("the commands", 1)[1].split(".", 1)[0]
    assert re.findall(r"`([a-z0-9]+)`", listed) == list(PROBE_COMMANDS)
    table = readme.split("| platform | os-release | controls written for it |", 1)[1].split("\n\n", 1)[0]
    rows = [line.split("|")[1:-1] for line in table.strip().splitlines()[1:]]
    ids = {"CoreOS Container Linux (end of life)": "coreos", "Flatcar Container Linux": "flatcar",
           "Fedora CoreOS": "fcos"}
    assert sorted(ids[name.strip()] for name, _, _ in rows) == sorted(ids.values())
    for name, _, controls in rows:
        platform = ids[name.strip()]
        wanted = {c.id for c in catalogue().values() if platform in c.meta.platforms}
        documented = set(catalogue()) if controls.strip() == "all eight" else set(re.findall(r"`([a-z-]+)`", controls))
        assert documented == wanted, platform
