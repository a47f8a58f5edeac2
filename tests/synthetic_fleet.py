"""A synthetic fleet written with the library (no lab, no SSH), shared by the notebook and report tests.

A 4-host fleet with every check status (one waived row, one failing on an expired waiver, one unreachable host),
a remediation in two waves (fixed, unchanged, fix_failed, blocked, error) and a later audit where two fixes were
undone.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from hardnir.control import catalogue
from hardnir.results import make_row, write_run
from hardnir.waivers import Waiver, apply_waivers
from hardnir.waves import ran_wave

HOSTS = ("node-01", "node-02", "node-03", "node-04")
CONTROLS = ("fleet-socket", "core-docker", "core-rkt", "sshd-socket")
T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
TODAY = date.today()


def severity(control: str) -> str:
    return str(catalogue()[control].meta.severity)


@dataclass
class Fleet:
    audit: Path
    remediate: Path
    after: Path
    waivers: Path


WAIVERS = [
    Waiver("core-docker", ("node-02",), (), False, "CI runner needs docker", "j.doe", TODAY + timedelta(days=10)),
    Waiver("core-docker", ("node-03",), (), False, "old exception", "a.smith", TODAY - timedelta(days=3)),
    Waiver("sshd-socket", (), ("bastion",), False, "bastion listens everywhere", None, None),
]

WAIVER_YAML = f"""\
waivers:
  - control: core-docker
    hosts: [node-02]
    reason: CI runner needs docker
    approver: j.doe
    expires: {(TODAY + timedelta(days=10)).isoformat()}
  - control: core-docker
    hosts: [node-03]
    reason: old exception
    approver: a.smith
    expires: {(TODAY - timedelta(days=3)).isoformat()}
  - control: sshd-socket
    groups: [bastion]
    reason: bastion listens everywhere
"""

AUDIT = {
    "node-01": {"fleet-socket": "fail", "core-docker": "pass", "core-rkt": "fail", "sshd-socket": "pass"},
    "node-02": {"fleet-socket": "fail", "core-docker": "fail", "core-rkt": "not_applicable", "sshd-socket": "pass"},
    "node-03": {"fleet-socket": "pass", "core-docker": "fail", "core-rkt": "fail", "sshd-socket": "fail"},
    "node-04": dict.fromkeys(CONTROLS, "error"),
}

# host -> control -> (fix status, verify status, fix message)
REMEDIATE = {
    "node-01": {
        "fleet-socket": ("fixed", "pass", "applied"),
        "core-docker": ("unchanged", "pass", "already compliant"),
        "core-rkt": ("fixed", "pass", "applied"),
        "sshd-socket": ("unchanged", "pass", "already compliant"),
    },
    "node-02": {
        "fleet-socket": ("fix_failed", "fail", "fix failed and was undone, host left in its original state: boom"),
        "core-docker": ("unchanged", "fail", "not fixed: waived (CI runner needs docker)"),
        "core-rkt": ("unchanged", "not_applicable", "not applicable"),
        "sshd-socket": ("unchanged", "pass", "already compliant"),
    },
    "node-03": {
        "fleet-socket": ("unchanged", "pass", "already compliant"),
        "core-docker": ("blocked", "fail", "lockout guard: core could lose access; no fallback admin path"),
        "core-rkt": ("fixed", "pass", "applied"),
        "sshd-socket": ("fixed", "pass", "applied"),
    },
    "node-04": dict.fromkeys(CONTROLS, ("error", "error", "not fixed: the check could not run")),
}

AFTER = {
    "node-01": {"fleet-socket": "fail", "core-docker": "pass", "core-rkt": "pass", "sshd-socket": "pass"},
    "node-02": {"fleet-socket": "fail", "core-docker": "fail", "core-rkt": "not_applicable", "sshd-socket": "pass"},
    "node-03": {"fleet-socket": "pass", "core-docker": "fail", "core-rkt": "fail", "sshd-socket": "pass"},
    "node-04": {"fleet-socket": "fail", "core-docker": "pass", "core-rkt": "pass", "sshd-socket": "pass"},
}


def row(run_id: str, runbook: str, host: str, control: str, phase: str, status: str, at: datetime,
        duration: float, message: str = "", changed: bool = False) -> dict[str, object]:
    evidence = {"live_socket": {"mode": "0666" if status == "fail" else "0600"}, "host": host}
    if status == "error":
        message = message or "ssh: connection refused"
        evidence = {}
    return make_row(
        run_id=run_id, runbook=runbook, host=host, control=control, phase=phase, status=status,
        severity=severity(control), changed=changed, expected="root-only" if phase != "fix" else "",
        observed="0666" if status == "fail" else "0600", message=message or f"{control} is {status}",
        evidence=evidence, started_at=at, duration_s=duration, host_key=f"SHA256:{host}",
    )


def audit_rows(run_id: str, start: datetime, states: Mapping[str, Mapping[str, str]]) -> list[dict[str, object]]:
    rows = []
    for n, host in enumerate(HOSTS):
        at = start + timedelta(seconds=n)
        rows += [row(run_id, "audit", host, c, "check", states[host][c], at, 1.5 + 0.1 * i)
                 for i, c in enumerate(CONTROLS)]
    return rows


def remediate_rows(run_id: str, start: datetime) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for n, host in enumerate(HOSTS):
        at = start + timedelta(seconds=30 * (n // 2))  # wave 2 starts 30 s after wave 1
        checks = [row(run_id, "remediate", host, c, "check", AUDIT[host][c], at, 2.0) for c in CONTROLS]
        fixes, fix_at = [], at + timedelta(seconds=2)
        for c in CONTROLS:
            status, _, message = REMEDIATE[host][c]
            step = 5.0 if status in ("fixed", "fix_failed") else 0.5
            fixes.append(row(run_id, "remediate", host, c, "fix", status, fix_at, step + 3.0, message,
                             changed=status == "fixed"))
            fix_at += timedelta(seconds=step)
        verify = [row(run_id, "remediate", host, c, "verify", REMEDIATE[host][c][1], fix_at, 1.0) for c in CONTROLS]
        rows += checks + fixes + verify
    return rows


def write(path: Path, rows: list[dict[str, object]], runbook: str, run_id: str, start: datetime,
          **meta: object) -> Path:
    groups = {h: ("bastion",) if h == "node-04" else () for h in HOSTS}
    waived = apply_waivers(rows, WAIVERS, groups, TODAY)
    document = {"run_id": run_id, "runbook": runbook, "started_at": start.isoformat(), "hosts": list(HOSTS),
                "controls": dict.fromkeys(CONTROLS, "1"), "operator": "tester", **meta}
    write_run(path, waived, document)
    return path


def make_fleet(root: Path) -> Fleet:
    audit = write(root / "audit", audit_rows("run-a", T0, AUDIT), "audit", "run-a", T0,
                  options={"waivers": "waivers.yaml"}, notes=[])
    start = T0 + timedelta(hours=1)
    waves = [ran_wave(1, 2, list(HOSTS[:2]), ["node-02"]), ran_wave(2, 2, list(HOSTS[2:]), ["node-04"])]
    remediate = write(root / "remediate", remediate_rows("run-r", start), "remediate", "run-r", start,
                      options={"wave_size": 2, "max_fail_percent": None, "dry_run": False}, waves=waves)
    later = T0 + timedelta(days=1)
    after = write(root / "audit-after", audit_rows("run-b", later, AFTER), "audit", "run-b", later,
                  options={}, notes=[])
    waivers = root / "waivers.yaml"
    waivers.write_text(WAIVER_YAML, encoding="utf-8")
    return Fleet(audit, remediate, after, waivers)


