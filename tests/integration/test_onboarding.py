"""From zero to an audit on lab hosts: `hardnir init`, `keys scan`/`keys check`, `doctor`, and the README's
"Audit your own fleet" commands run as written, from an empty folder to a run directory.

The operator's machine is imitated by a HOME whose ~/.ssh/id_ed25519 is the lab key and no ssh-agent: the
inventories `init` writes name no key, as OpenSSH would not.
"""

from __future__ import annotations

import csv
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from hardnir.lab import LabHost, lab_exec, reset_host

pytestmark = pytest.mark.lab

REPO = Path(__file__).resolve().parents[2]
CURL_ASIDE = "/usr/bin/curl.hardnir-doctor-test"


def hardnir(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hardnir.cli", *args], capture_output=True, text=True,
                          timeout=300, cwd=cwd, stdin=subprocess.DEVNULL)


@pytest.fixture
def home(lab: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "home"
    (folder / ".ssh").mkdir(parents=True, mode=0o700)
    shutil.copy(lab.key_file, folder / ".ssh" / "id_ed25519")
    os.chmod(folder / ".ssh" / "id_ed25519", 0o600)
    monkeypatch.setenv("HOME", str(folder))
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    return folder


@pytest.fixture
def hosts(lab: Any) -> list[LabHost]:
    """Four hosts from the end of the lab (other tests use its first ones), back in their seeded state."""
    chosen = list(lab.hosts[-4:])
    for host in chosen:
        reset_host(host.name)
    return chosen


def init(tmp_path: Path, lines: list[str], name: str = "fleet") -> Path:
    listing = tmp_path / f"{name}-hosts.txt"
    listing.write_text("# lab hosts\n" + "\n".join(lines) + "\n")
    done = hardnir("init", str(tmp_path / name), "--hosts", str(listing))
    assert done.returncode == 0, done.stderr
    return tmp_path / name


def key_rows(stdout: str) -> dict[str, tuple[str, str]]:
    """keys table -> {address: (fingerprint, status)}."""
    found = {}
    for line in stdout.splitlines()[2:]:
        cells = line.split()
        if len(cells) == 5 and (cells[3].startswith("SHA256:") or cells[3] == "-"):
            found[cells[1]] = (cells[3], cells[4])
    return found


def test_init_then_keys_scan_accept_and_check(lab: Any, tmp_path: Path, home: Path) -> None:
    chosen, dead = lab.hosts[-3:], lab.dead_hosts[0]
    inv = init(tmp_path, [h.address for h in chosen])
    known_hosts, log = inv / "known_hosts", inv / "known_hosts.log"

    before = hardnir("keys", "check", "-i", str(inv), "--quiet")
    assert before.returncode == 1, before.stdout + before.stderr
    assert key_rows(before.stdout) == {h.address: (h.host_key_fingerprint, "unknown") for h in chosen}
    assert "hardnir keys scan -i" in before.stdout and not known_hosts.exists()

    scan = hardnir("keys", "scan", "-i", str(inv), "--accept")
    assert scan.returncode == 0, scan.stdout + scan.stderr
    assert key_rows(scan.stdout) == {h.address: (h.host_key_fingerprint, "accepted") for h in chosen}
    assert f"recorded 3 key(s) in {known_hosts.resolve()}" in scan.stdout
    assert "keys accept [" in scan.stderr  # the progress line
    recorded = sorted(line.split()[0] for line in known_hosts.read_text().splitlines())
    assert recorded == sorted(h.address for h in chosen)
    entries = log.read_text().splitlines()
    assert len(entries) == 3
    for host in chosen:
        line = next(e for e in entries if f" {host.address} " in e)
        assert f"accepted {host.address} ssh-ed25519 {host.host_key_fingerprint}" in line
        assert "trust on first use" in line and "by=" in line

    again = hardnir("keys", "scan", "-i", str(inv), "--accept", "--quiet")
    assert again.returncode == 0 and set(key_rows(again.stdout).values()) == {
        (h.host_key_fingerprint, "known") for h in chosen}
    assert len(known_hosts.read_text().splitlines()) == 3 and len(log.read_text().splitlines()) == 3

    check = hardnir("keys", "check", "-i", str(inv), "--quiet")
    assert check.returncode == 0 and "check: 3 known" in check.stdout

    # an unreachable host: a row with the reason, exit 4, the others still checked
    with_dead = init(tmp_path, [*(h.address for h in chosen), dead.address], name="with-dead")
    shutil.copy(known_hosts, with_dead / "known_hosts")
    out = hardnir("keys", "check", "-i", str(with_dead), "--quiet")
    assert out.returncode == 4
    rows = key_rows(out.stdout)
    assert rows[dead.address] == ("-", "unreachable") and len(rows) == 4
    assert f"{dead.address}: unreachable" in out.stdout and "unreachable on " + dead.address in out.stdout


def test_keys_scan_expect_match_and_mismatch(lab: Any, tmp_path: Path, home: Path) -> None:
    first, second, third = lab.hosts[-3:]
    inv = init(tmp_path, [first.address, second.address, third.address])
    expect = tmp_path / "fingerprints.txt"
    expect.write_text(
        "# from the provisioning system\n"
        f"256 {first.host_key_fingerprint} core@{first.address} (ED25519)\n"  # ssh-keygen -l output
        f"{second.address} {third.host_key_fingerprint}\n"  # the wrong one
    )
    out = hardnir("keys", "scan", "-i", str(inv), "--expect", str(expect), "--quiet")
    assert out.returncode == 1, out.stdout + out.stderr
    assert key_rows(out.stdout) == {
        first.address: (first.host_key_fingerprint, "verified"),
        second.address: (second.host_key_fingerprint, "mismatch"),
        third.address: (third.host_key_fingerprint, "not_expected"),
    }
    assert f"expected {third.host_key_fingerprint}; not recorded" in out.stdout
    assert [line.split()[0] for line in (inv / "known_hosts").read_text().splitlines()] == [first.address]
    (entry,) = (inv / "known_hosts.log").read_text().splitlines()
    assert f"verified {first.address} ssh-ed25519 {first.host_key_fingerprint}" in entry and str(expect) in entry

    # the right fingerprints, as known_hosts lines (here: the lab's own, made from its key files)
    lab_lines = {line.split()[0]: line for line in Path(lab.known_hosts).read_text().splitlines()}
    expect.write_text(f"{lab_lines[second.address]}\n{lab_lines[third.address]}\n")
    out = hardnir("keys", "scan", "-i", str(inv), "--expect", str(expect), "--quiet")
    assert out.returncode == 0, out.stdout
    assert {status for _, status in key_rows(out.stdout).values()} == {"known", "verified"}
    assert len((inv / "known_hosts").read_text().splitlines()) == 3

    bad = tmp_path / "bad.txt"
    bad.write_text(f"{first.address} MD5:01:02\n")
    out = hardnir("keys", "scan", "-i", str(inv), "--expect", str(bad))
    assert out.returncode == 2 and out.stderr.strip() == (
        f"hardnir: error: {bad} line 1: MD5 fingerprints are not accepted; give SHA256 (ssh-keygen -l -E sha256)")


def test_a_changed_key_is_reported_and_never_replaced(lab: Any, tmp_path: Path, home: Path) -> None:
    first, second, third = lab.hosts[-3:]
    inv = init(tmp_path, [first.address, third.address])
    lab_lines = {line.split()[0]: line.split(None, 1)[1] for line in Path(lab.known_hosts).read_text().splitlines()}
    forged = f"{first.address} {lab_lines[second.address]}\n"  # first's name, second's key
    (inv / "known_hosts").write_text(forged)

    out = hardnir("keys", "scan", "-i", str(inv), "--accept", "--quiet")
    assert out.returncode == 1, out.stdout + out.stderr
    rows = key_rows(out.stdout)
    assert rows[first.address] == (first.host_key_fingerprint, "changed")
    assert rows[third.address] == (third.host_key_fingerprint, "accepted")  # the unknown one is still recorded
    assert f"differs from {(inv / 'known_hosts').resolve()}: ssh-ed25519 {second.host_key_fingerprint}" in out.stdout
    assert f"ssh-keygen -R '{first.address}'" in out.stdout
    lines = (inv / "known_hosts").read_text().splitlines(keepends=True)
    assert lines[0] == forged and len(lines) == 2  # the changed one untouched
    assert first.address not in (inv / "known_hosts.log").read_text()

    check = hardnir("keys", "check", "-i", str(inv), "--quiet")
    assert check.returncode == 1 and "check: 1 changed, 1 known" in check.stdout
    # and the connection plugin refuses it too: doctor says so, with the way out
    doctor = hardnir("doctor", "-i", str(inv), "--hosts", first.address, "--quiet")
    assert doctor.returncode == 4 and "host key CHANGED" in doctor.stdout and "keys check -i" in doctor.stdout


@pytest.fixture
def alice(hosts: list[LabHost]) -> Iterator[LabHost]:
    """A user `alice` on one host, with the lab key, whose sudo rule needs a password (`alice-secret`)."""
    host = hosts[1]
    setup = (
        "useradd -m -s /bin/sh alice && echo alice:alice-secret | chpasswd && "
        "mkdir -p /home/alice/.ssh && cp /home/core/.ssh/authorized_keys /home/alice/.ssh/ && "
        "chown -R alice: /home/alice/.ssh && chmod 700 /home/alice/.ssh && "
        "echo 'alice ALL=(ALL) ALL' > /etc/sudoers.d/alice && chmod 0440 /etc/sudoers.d/alice"
    )
    done = lab_exec(host.name, setup)
    assert done.returncode == 0, done.stderr
    yield host
    lab_exec(host.name, "rm -f /etc/sudoers.d/alice; userdel -r alice")


@pytest.fixture
def without_curl(hosts: list[LabHost]) -> Iterator[LabHost]:
    host = hosts[2]
    done = lab_exec(host.name, f"mv /usr/bin/curl {CURL_ASIDE}")
    assert done.returncode == 0, done.stderr
    yield host
    restored = lab_exec(host.name, f"mv {CURL_ASIDE} /usr/bin/curl")
    assert restored.returncode == 0, restored.stderr


def doctor_rows(stdout: str) -> dict[tuple[str, str], tuple[str, str]]:
    """doctor's table -> {(host, check): (status, detail)}."""
    found = {}
    for line in stdout.splitlines()[2:]:
        cells = re.split(r"\s{2,}", line.strip(), maxsplit=3)
        if len(cells) == 4 and cells[1] in ("login", "sudo", "commands", "platform", "clock"):
            found[(cells[0], cells[1])] = (cells[2], cells[3])
    return found


def test_doctor_on_the_lab(lab: Any, tmp_path: Path, home: Path, hosts: list[LabHost], alice: LabHost,
                           without_curl: LabHost, monkeypatch: pytest.MonkeyPatch) -> None:
    ready, dead = hosts[0], lab.dead_hosts[0]
    inv = init(tmp_path, [ready.address, f"alice@{alice.address}", without_curl.address, dead.address])
    scan = hardnir("keys", "scan", "-i", str(inv), "--accept", "--quiet")
    assert scan.returncode == 4 and f"{dead.address}: unreachable" in scan.stdout  # the three others recorded

    out = hardnir("doctor", "-i", str(inv))
    assert out.returncode == 4, out.stdout + out.stderr
    rows = doctor_rows(out.stdout)
    assert len(rows) == 4 * 5
    assert "doctor [" in out.stderr  # progress

    assert all(rows[(ready.address, c)][0] == "ok" for c in ("login", "sudo", "commands", "clock"))
    assert rows[(ready.address, "login")][1].startswith(f"core@{ready.address}, host key {ready.host_key_fingerprint}")
    assert rows[(ready.address, "sudo")][1] == "sudo -n works for core"
    for host in (ready, alice, without_curl):
        status, detail = rows[(host.address, "platform")]
        if host.profile["os"] == "flatcar":
            assert (status, detail) == ("ok", "Flatcar Container Linux 3510.2.1 (ID=flatcar)")
        elif host.profile["os"] == "fcos":
            assert (status, detail) == ("ok", "Fedora CoreOS 40 (ID=fedora)")
        else:
            assert status == "warn" and detail.startswith("CoreOS Container Linux 1235.9.0 (ID=coreos): end of life")

    assert rows[(alice.address, "login")][0] == "ok"
    assert rows[(alice.address, "sudo")] == ("fail", "sudo as alice fails: sudo: a password is required")
    assert rows[(alice.address, "commands")][0] == "ok"
    assert "sudo fail on " + alice.address + ": let alice sudo without a password" in out.stdout

    assert rows[(without_curl.address, "commands")] == ("fail", "missing on PATH /usr/sbin:/usr/bin:/sbin:/bin: curl")
    assert f"commands fail on {without_curl.address}: install curl on the host" in out.stdout
    assert rows[(without_curl.address, "sudo")][0] == "ok"

    assert rows[(dead.address, "login")][0] == "fail"
    skipped = {rows[(dead.address, c)] for c in ("sudo", "commands", "platform", "clock")}
    assert skipped == {("skipped", "needs a login")}
    assert f"login fail on {dead.address}: check the hostname and port" in out.stdout
    assert out.stdout.rstrip().endswith("ready: 1 of 4 hosts")

    # the fix doctor names for alice works: the sudo password from the environment
    hosts_yaml = yaml.safe_load((inv / "hosts.yaml").read_text())
    extras = yaml.safe_load((inv / "defaults.yaml").read_text())["connection_options"]["hardnir"]["extras"]
    hosts_yaml[f"{alice.address}"]["connection_options"] = {
        "hardnir": {"extras": {**extras, "sudo_password_env": "HARDNIR_TEST_ALICE_SUDO"}}}
    (inv / "hosts.yaml").write_text(yaml.safe_dump(hosts_yaml))
    monkeypatch.setenv("HARDNIR_TEST_ALICE_SUDO", "alice-secret")
    out = hardnir("doctor", "-i", str(inv), "--hosts", f"{ready.address},{alice.address}", "--quiet")
    assert out.returncode == 0, out.stdout
    rows = doctor_rows(out.stdout)
    assert rows[(alice.address, "sudo")] == ("ok", "sudo with the password from sudo_password_env works for alice")
    assert "alice-secret" not in out.stdout + out.stderr


def readme_fleet_commands() -> list[str]:
    """The command lines of the README's "Audit your own fleet" block, comments stripped."""
    text = (REPO / "README.md").read_text()
    section = text.split("## Audit your own fleet", 1)[1]
    block = section.split("```sh\n", 1)[1].split("```", 1)[0]
    return [line.split("  #", 1)[0].strip() for line in block.splitlines() if line.strip()]


def test_readme_audit_your_own_fleet_from_an_empty_folder(lab: Any, tmp_path: Path, home: Path,
                                                          hosts: list[LabHost]) -> None:
    commands = readme_fleet_commands()
    assert [c.split()[:2] for c in commands] == [["pip", "install"], ["hardnir", "init"], ["hardnir", "keys"],
                                                 ["hardnir", "audit"]]
    # The checkout, as a user has it (no venv, no runs), and a fresh virtualenv that finds the dependencies
    # already installed here, so `pip install` builds and installs hardnir itself without downloading them.
    checkout = tmp_path / "src" / "hardnir"
    shutil.copytree(REPO, checkout, ignore=shutil.ignore_patterns(
        ".git", ".venv", "runs", "build", "*.egg-info", "__pycache__", ".*_cache"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    site = next((venv / "lib").glob("python3*/site-packages"))
    (site / "hardnir-test-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")

    work = tmp_path / "work"
    work.mkdir()
    (work / "hosts.txt").write_text("".join(f"{h.address}\n" for h in hosts[:3]))  # the operator's own list
    env = {**os.environ, "PATH": f"{venv / 'bin'}:{os.environ['PATH']}", "VIRTUAL_ENV": str(venv)}
    outputs = []
    for command in commands:
        line = command.replace("path/to/hardnir", str(checkout))
        done = subprocess.run(["bash", "-c", line], cwd=work, env=env, capture_output=True, text=True,
                              timeout=600, stdin=subprocess.DEVNULL)
        outputs.append(done)
        allowed = (0, 1) if "audit" in line else (0,)  # 1: the audit found non-compliant hosts
        assert done.returncode in allowed, (line, done.stdout[-3000:], done.stderr[-3000:])
    assert shutil.which("hardnir", path=str(venv / "bin")) is not None
    audit = outputs[-1]
    run_dir = work / "runs" / "first"
    assert (run_dir / "results.csv").is_file() and (run_dir / "run.json").is_file()
    assert "run directory: runs/first" in audit.stdout
    with (run_dir / "results.csv").open(newline="") as handle:
        statuses = {row["status"] for row in csv.DictReader(handle)}
    assert statuses and "error" not in statuses
    assert (work / "myfleet" / "known_hosts.log").is_file()
    doctor = subprocess.run(["hardnir", "doctor", "-i", "myfleet", "--quiet"], cwd=work, env=env,
                            capture_output=True, text=True, timeout=300)
    assert doctor.returncode == 0, doctor.stdout
