"""Reliability on the lab: faults injected for real during runs, partial fixes, lockout safety, host keys,
secrets, hostile input and a load test. Every other host must complete and no host may go missing."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from hardnir import api
from hardnir.control import catalogue
from hardnir.lab import lab_exec, reset_host

pytestmark = pytest.mark.lab

SECRET = "Pa55-w0rd-never-written"


def copy_inventory(lab: Any, tmp_path: Path, name: str = "inv", hosts: list[str] | None = None,
                   host_data: dict[str, Any] | None = None, extras: dict[str, Any] | None = None,
                   username: str | None = None) -> Path:
    src = Path(lab.inventory_dir)
    all_hosts = yaml.safe_load((src / "hosts.yaml").read_text())
    chosen = {h: all_hosts[h] for h in (hosts or list(all_hosts))}
    for entry in chosen.values():
        entry.setdefault("data", {}).update(host_data or {})
        if username:
            entry["username"] = username
    defaults = yaml.safe_load((src / "defaults.yaml").read_text())
    defaults["connection_options"]["hardnir"]["extras"].update(extras or {})
    dst = tmp_path / name
    dst.mkdir()
    (dst / "hosts.yaml").write_text(yaml.safe_dump(chosen, sort_keys=False))
    (dst / "groups.yaml").write_text((src / "groups.yaml").read_text())
    (dst / "defaults.yaml").write_text(yaml.safe_dump(defaults, sort_keys=False))
    return dst


def host_rows(outcome: api.RunOutcome, host: str) -> list[dict[str, Any]]:
    return [r for r in outcome.rows if r["host"] == host]


class StopSshdBeforeFix:
    """A Nornir processor that kills a host's sshd (listener and sessions) just before its first fix."""

    def __init__(self, host: str) -> None:
        self.host = host
        self.done = False

    def task_started(self, task: Any) -> None: ...
    def task_completed(self, task: Any, result: Any) -> None: ...
    def task_instance_started(self, task: Any, host: Any) -> None: ...
    def task_instance_completed(self, task: Any, host: Any, result: Any) -> None: ...
    def subtask_instance_completed(self, task: Any, host: Any, result: Any) -> None: ...

    def subtask_instance_started(self, task: Any, host: Any) -> None:
        if host.name == self.host and task.name == "fix_control" and not self.done:
            self.done = True
            lab_exec(self.host, "systemctl stop sshd.socket; pkill -KILL -f 'sshd: core' ; "
                                "systemctl kill --signal=KILL 'sshd@*' ; true")


def test_faults_during_audit_and_remediation(lab: Any, tmp_path: Path) -> None:
    names = [h.name for h in lab.hosts]
    killed, frozen, no_sshd, full = names[1], names[2], names[3], names[4]
    inv = copy_inventory(lab, tmp_path, extras={"command_timeout": 8, "connect_timeout": 4})
    # /var/lib/hardnir (backups and rollback records) on a full 64 kB filesystem
    lab_exec(full, "mkdir -p /var/lib/hardnir && mount -t tmpfs -o size=64k tmpfs /var/lib/hardnir && "
                   "dd if=/dev/zero of=/var/lib/hardnir/fill bs=4k 2>/dev/null; df -h /var/lib/hardnir")
    try:
        started = time.monotonic()
        result: dict[str, api.RunOutcome] = {}

        def remediate() -> None:
            result["fix"] = api.execute("remediate", inv, exclude="core-wheel,sshd-socket",
                                        processors=[StopSshdBeforeFix(no_sshd)], out=tmp_path / "fix")

        worker = threading.Thread(target=remediate)
        # power off one host and freeze another (veth down: packets vanish, nothing answers) as the run starts
        _power_off(killed)
        _link(frozen, "down")
        worker.start()
        worker.join(timeout=300)
        assert not worker.is_alive(), "the run hung past its timeouts"
        elapsed = time.monotonic() - started
        outcome = result["fix"]
        assert elapsed < 120, elapsed
        n = len(catalogue()) - 2
        assert len(outcome.rows) == (len(names) + len(lab.dead_hosts)) * n * 3  # nobody missing
        for host, words in ((killed, ("unreachable", "timed out")), (frozen, ("timed out", "unreachable"))):
            rows = host_rows(outcome, host)
            assert {r["status"] for r in rows} == {"error"}, (host, rows[0]["message"])
            assert any(w in str(rows[0]["message"]) for w in words), rows[0]["message"]
        lost = [r for r in host_rows(outcome, no_sshd) if r["phase"] in ("fix", "verify")]
        assert {r["status"] for r in lost} & {"error", "fix_failed"}
        assert any("connection" in str(r["message"]) or "closed" in str(r["message"]) for r in lost)
        full_fix = [r for r in host_rows(outcome, full) if r["phase"] == "fix" and r["status"] != "unchanged"]
        assert full_fix and all(r["status"] == "error" and "nothing changed" in str(r["message"])
                                for r in full_fix), [r["message"] for r in full_fix]
        healthy = [h for h in names if h not in (killed, frozen, no_sshd, full)]
        for host in healthy:
            statuses = {r["status"] for r in host_rows(outcome, host) if r["phase"] == "verify"}
            assert statuses <= {"pass", "not_applicable"}, (host, statuses)
        assert outcome.exit_code == api.EXIT_UNREACHABLE
        for name in ("results.csv", "results.parquet", "run.json"):
            assert (tmp_path / "fix" / name).stat().st_size > 0

        audit = api.execute("audit", inv, out=tmp_path / "audit")
        assert len(audit.rows) == (len(names) + len(lab.dead_hosts)) * len(catalogue())
        assert {r["status"] for r in host_rows(audit, killed)} == {"error"}
    finally:
        _link(frozen, "up")
        for host in (killed, frozen, no_sshd, full):
            reset_host(host)
        for host in names:
            if host not in (killed, frozen, no_sshd, full):
                reset_host(host)


def _power_off(host: str) -> None:
    """Pull the plug: SIGKILL the container's systemd-nspawn and its init."""
    from hardnir.lab.hosts import init_pid, nspawn_processes

    init = init_pid(host)
    os.kill(nspawn_processes()[host], 9)
    os.kill(init, 9)


def _link(host: str, state: str) -> None:
    from hardnir.lab.network import veth_name

    subprocess.run(["ip", "link", "set", veth_name(host), state], check=True)


def test_half_done_fix_is_undone_and_rollback_of_it_is_a_no_op(lab: Any, tmp_path: Path) -> None:
    host = lab.hosts[0].name
    reset_host(host)
    inv = copy_inventory(lab, tmp_path, hosts=[host])
    try:
        groups_before = lab_exec(host, "cat /etc/group; id -nG core").stdout
        # the second step of core-rkt's fix (the /etc/sysusers.d override) cannot be written: a file is in the way
        lab_exec(host, "rm -rf /etc/sysusers.d && touch /etc/sysusers.d")
        outcome = api.execute("remediate", inv, controls="core-rkt", out=tmp_path / "fix")
        fix = next(r for r in outcome.rows if r["phase"] == "fix")
        assert fix["status"] == "fix_failed"
        assert "undone" in str(fix["message"]) and "original state" in str(fix["message"])
        assert outcome.exit_code == api.EXIT_FIX_FAILED
        assert lab_exec(host, "cat /etc/group; id -nG core").stdout == groups_before
        undo = api.execute("rollback", inv, target_run=tmp_path / "fix", out=tmp_path / "undo")
        assert [r["status"] for r in undo.rows if r["phase"] == "rollback"] == ["unchanged"]
        assert lab_exec(host, "cat /etc/group; id -nG core").stdout == groups_before
    finally:
        reset_host(host)


def test_lockout_guard_blocks_without_allow_lockout(lab: Any, tmp_path: Path) -> None:
    host = lab.hosts[0].name
    reset_host(host)
    inv = copy_inventory(lab, tmp_path, hosts=[host], host_data={"sshd_socket": {"policy": "disabled"}})
    outcome = api.execute("remediate", inv, controls="core-wheel,sshd-socket", out=tmp_path / "run")
    fixes = {r["control"]: r for r in outcome.rows if r["phase"] == "fix"}
    for control in ("core-wheel", "sshd-socket"):
        assert fixes[control]["status"] == "blocked"
        assert "lockout guard" in str(fixes[control]["message"])
        assert "--allow-lockout" in str(fixes[control]["message"])
    assert lab_exec(host, "sudo -u core sudo -n true; echo rc=$?").stdout.strip().endswith("rc=0")


def test_allow_lockout_with_verified_fallback(lab: Any, tmp_path: Path) -> None:
    host = lab.hosts[0].name
    reset_host(host)
    inv = copy_inventory(lab, tmp_path, hosts=[host], host_data={"hardnir_fallback": {"username": "ops"}})
    try:
        outcome = api.execute("remediate", inv, controls="core-wheel", allow_lockout=True, out=tmp_path / "run")
        fix = next(r for r in outcome.rows if r["phase"] == "fix")
        assert fix["status"] == "fixed", fix["message"]
        assert "fallback admin ops verified" in str(fix["message"])
        assert "fallback admin ops verified" in str(fix["evidence"])  # checked before and after
        assert '"fallback_after"' in str(fix["evidence"])
        assert next(r for r in outcome.rows if r["phase"] == "verify")["status"] == "pass"
        assert "rc=1" in lab_exec(host, "sudo -u core sudo -n true 2>/dev/null; echo rc=$?").stdout
    finally:
        reset_host(host)


def test_dead_man_timer_restores_sshd_when_a_fresh_login_fails(lab: Any, tmp_path: Path) -> None:
    host = lab.hosts[0]
    reset_host(host.name)
    inv = copy_inventory(lab, tmp_path, hosts=[host.name],
                         host_data={"sshd_socket": {"policy": "disabled"}, "hardnir_deadman_seconds": 8})
    try:
        outcome = api.execute("remediate", inv, controls="sshd-socket", allow_lockout=True, out=tmp_path / "run")
        fix = next(r for r in outcome.rows if r["phase"] == "fix")
        assert fix["status"] == "fix_failed"
        assert "fresh SSH login failed" in str(fix["message"]) and "dead-man" in str(fix["message"])
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline:
            state = lab_exec(host.name, "systemctl is-active sshd.socket; readlink /etc/systemd/system/sshd.socket"
                             "; true").stdout.split()
            if state and state[0] == "active" and "/dev/null" not in state:
                break
            time.sleep(1)
        else:
            raise AssertionError(f"dead-man timer did not restore sshd: {state}")
        again = api.execute("audit", inv, controls="sshd-socket", out=tmp_path / "after")
        assert again.rows[0]["status"] == "fail"  # back to the original, reachable state
    finally:
        reset_host(host.name)


def test_unknown_and_changed_host_keys_are_refused_in_every_runbook(lab: Any, tmp_path: Path) -> None:
    host = lab.hosts[0]
    other = lab.hosts[1]
    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    lines = Path(lab.known_hosts).read_text().splitlines()
    other_key = next(line for line in lines if line.split()[0] == other.address).split(None, 1)[1]
    forged = tmp_path / "forged_known_hosts"
    forged.write_text(f"{host.address} {other_key}\n")
    fix_dir = tmp_path / "fix"
    real = copy_inventory(lab, tmp_path, "real", hosts=[host.name])
    api.execute("remediate", real, controls="fleet-socket", dry_run=True, out=fix_dir)
    for label, known, word in (("unknown", empty, "unknown host key"), ("changed", forged, "CHANGED")):
        inv = copy_inventory(lab, tmp_path, label, hosts=[host.name], extras={"known_hosts": str(known)})
        runs = [
            api.execute("audit", inv, out=tmp_path / f"{label}-audit"),
            api.execute("remediate", inv, out=tmp_path / f"{label}-fix"),
            api.execute("rollback", inv, target_run=fix_dir, out=tmp_path / f"{label}-undo"),
        ]
        for outcome in runs:
            assert outcome.rows and {r["status"] for r in outcome.rows} == {"error"}
            assert all(word in str(r["message"]) and host.host_key_fingerprint in str(r["message"])
                       for r in outcome.rows)
    assert empty.read_text() == ""


def test_secrets_never_appear_in_artefacts(lab: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    host = lab.hosts[0].name
    monkeypatch.setenv("HARDNIR_SUDO_SECRET", SECRET + "-sudo")
    inv = copy_inventory(lab, tmp_path, hosts=[host, lab.dead_hosts[0].name],
                         extras={"passphrase": SECRET + "-key", "sudo_password_env": "HARDNIR_SUDO_SECRET"})
    defaults = yaml.safe_load((inv / "defaults.yaml").read_text())
    defaults["password"] = SECRET
    (inv / "defaults.yaml").write_text(yaml.safe_dump(defaults))
    outputs = []
    for args in (["audit"], ["remediate", "--dry-run"]):
        out = tmp_path / args[0]
        done = subprocess.run([sys.executable, "-m", "hardnir.cli", *args, "-i", str(inv), "--out", str(out)],
                              capture_output=True, text=True, timeout=300)
        outputs += [done.stdout, done.stderr]
        files = sorted(out.iterdir())
        assert {"results.csv", "results.parquet", "run.json", "run.log", "controls.json", "SHA256SUMS"} <= {
            p.name for p in files}
        outputs += [p.read_bytes().decode("utf-8", "replace") for p in files]
    for blob in outputs:
        for secret in (SECRET, SECRET + "-sudo", SECRET + "-key"):
            assert secret not in blob


def test_hostile_probe_output_and_hostnames(lab: Any, tmp_path: Path) -> None:
    host = lab.hosts[0].name
    lab_exec(host, "printf 'ID=coreos\\nNAME=\"\\033[31mred\\000nul\"\\nVERSION_ID==cmd|calc!A0\\n' "
                   "> /etc/os-release; head -c 10485760 /dev/zero | tr '\\0' A >> /etc/coreos/update.conf; "
                   "printf '\\n=HYPERLINK(1)\\n' >> /etc/coreos/update.conf")
    try:
        evil_hosts = {host: yaml.safe_load((Path(lab.inventory_dir) / "hosts.yaml").read_text())[host],
                      "evil;name": {"hostname": "127.0.0.1;touch /tmp/hardnir-pwned", "groups": ["lab"]},
                      "subshell": {"hostname": "$(touch /tmp/hardnir-pwned2)", "groups": ["lab"]}}
        inv = copy_inventory(lab, tmp_path, hosts=[host])
        (inv / "hosts.yaml").write_text(yaml.safe_dump(evil_hosts, sort_keys=False))
        outcome = api.execute("audit", inv, out=tmp_path / "run")
        assert not Path("/tmp/hardnir-pwned").exists() and not Path("/tmp/hardnir-pwned2").exists()
        good = host_rows(outcome, host)
        assert len(good) == len(catalogue()) and all(r["status"] != "error" for r in good)
        for name in ("evil;name", "subshell"):
            rows = host_rows(outcome, name)
            assert len(rows) == len(catalogue()) and {r["status"] for r in rows} == {"error"}
        for row in outcome.rows:
            for key in ("evidence", "message", "observed"):
                value = str(row[key])
                assert "\x1b" not in value and "\x00" not in value
                assert len(value) <= 4100
        csv_text = (tmp_path / "run" / "results.csv").read_text(encoding="utf-8")
        assert "\x1b" not in csv_text and "\x00" not in csv_text
    finally:
        reset_host(host)


def test_repeated_audits_do_not_leak(lab: Any, tmp_path: Path) -> None:
    workers = len(lab.hosts) + len(lab.dead_hosts)
    figures = []
    for i in range(10):
        api.execute("audit", lab.inventory_dir, workers=workers, out=tmp_path / f"run{i}")
        fds = len(os.listdir("/proc/self/fd"))
        rss_kb = int(next(line.split()[1] for line in Path("/proc/self/status").read_text().splitlines()
                          if line.startswith("VmRSS:")))
        figures.append((fds, threading.active_count(), rss_kb))
    print("\nrun  open fds  threads  rss MB")
    for i, (fds, threads, rss) in enumerate(figures):
        print(f"{i:>3}  {fds:>8}  {threads:>7}  {rss / 1024:>6.1f}")
    print(f"peak RSS of the test process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.1f} MB")
    first, last = figures[1], figures[-1]
    assert last[0] <= first[0] + 2, figures
    assert last[1] <= first[1] + 1, figures
    assert last[2] <= first[2] * 1.25 + 20 * 1024, figures
