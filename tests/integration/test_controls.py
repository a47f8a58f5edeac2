"""Every control end to end on a real lab host: fail -> dry run changes nothing -> fixed -> idempotent ->
rollback restores the original facts -> a second rollback changes nothing."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from hardnir import api
from hardnir.facts import Facts
from hardnir.lab import lab_exec, reset_host
from hardnir.probe import Item

pytestmark = pytest.mark.lab

SNAPSHOT = r"""
find /etc -xdev -printf '%p %m %u %g %l\n' 2>/dev/null | sort | sha256sum
find /etc -xdev -type f -print0 2>/dev/null | sort -z | xargs -0 sha256sum | sha256sum
for u in sshd.socket sshd.service fleet.socket fleet.service docker.socket etcd2.service etcd-member.service \
         locksmithd.service zincati.service; do
  systemctl show -p ActiveState -p MainPID -p Listen -p Environment "$u"; done
for s in /run/fleet.sock /run/docker.sock; do stat -c '%n %a %U %G %i' "$s" 2>/dev/null; done
id -nG core; ls /var/lib/hardnir 2>&1 | head -3
"""

# Controls that need another control's fix first (fleet and locksmith are pointed at etcd's https endpoint).
WITH = {"fleet-etcd-tls": "etcd-tls", "locksmith-etcd-tls": "etcd-tls"}


def inventory_for(lab: Any, tmp_path: Path, host: str, username: str = "core", **data: Any) -> Path:
    """A copy of the lab inventory restricted to one host, with extra host data."""
    src = Path(lab.inventory_dir)
    dst = tmp_path / f"inv-{username}"
    dst.mkdir(exist_ok=True)
    hosts = yaml.safe_load((src / "hosts.yaml").read_text())
    entry = hosts[host]
    entry["username"] = username
    entry.setdefault("data", {}).update(data)
    (dst / "hosts.yaml").write_text(yaml.safe_dump({host: entry}))
    for name in ("groups.yaml", "defaults.yaml"):
        (dst / name).write_text((src / name).read_text())
    return dst


def rows(outcome: api.RunOutcome, control: str, phase: str) -> list[dict[str, Any]]:
    return [r for r in outcome.rows if r["control"] == control and r["phase"] == phase]


def one(outcome: api.RunOutcome, control: str, phase: str) -> dict[str, Any]:
    found = rows(outcome, control, phase)
    assert len(found) == 1, found
    return found[0]


def normalized_facts(inv: Path, host: str, controls: str) -> dict[str, Any]:
    """The probe's facts, minus what legitimately changes on any restart (PIDs, inode numbers, run state)."""
    facts = yaml.safe_load(api.gather(inv, hosts=host, controls=controls))[host]
    facts.pop("cmd:hardnir-state", None)
    facts.pop("cmd:login-user", None)
    out = {}
    for name, item in facts.items():
        text = re.sub(r"(?m)^(MainPID|INVOCATION_ID|JOURNAL_STREAM|SYSTEMD_EXEC_PID|LISTEN_PID)=.*$", "", item["text"])
        if name == "cmd:etcd-reach":  # keep who answered how; curl's wording and timings vary
            text = "\n".join(" ".join(line.split()[:3]) for line in text.splitlines())
        if name.startswith("procenv:") or name == "cmd:listeners":
            text = "\n".join(sorted(text.splitlines()))
        if name.startswith("listen:"):  # pids, fds and inodes change on a restart; which unit holds what does not
            live = Facts({name: Item(item["rc"], item["text"])}).listening(name.partition(":")[2])
            text = "\n".join(sorted(f"{lst.address} {sorted({(h.unit, h.comm) for h in lst.holders})}"
                                     for lst in live.listeners))
        out[name] = (item["rc"], text)
    return out


VANILLA = "lab-01"

CASES = [
    ("sshd-socket", {}),
    ("etcd-tls", {}),
    ("fleet-etcd-tls", {}),
    ("locksmith-etcd-tls", {}),
    ("fleet-socket", {}),
    ("core-docker", {}),
    ("core-rkt", {}),
    ("core-wheel", {"hardnir_fallback": {"username": "ops"}}),
]


@pytest.mark.parametrize(("control", "data"), CASES, ids=[c for c, _ in CASES])
def test_control_lifecycle(lab: Any, tmp_path: Path, control: str, data: dict[str, Any]) -> None:
    reset_host(VANILLA)
    try:
        lifecycle(lab, tmp_path, control, data)
    finally:
        reset_host(VANILLA)


def lifecycle(lab: Any, tmp_path: Path, control: str, data: dict[str, Any], host: str = VANILLA) -> None:
    """The whole lifecycle of `control` on lab host `host` (which must fail the control when seeded)."""
    inv = inventory_for(lab, tmp_path, host, hardnir_deadman_seconds=60, **data)
    selection = ",".join(filter(None, [WITH.get(control), control]))
    out = tmp_path / "runs"

    audit = api.execute("audit", inv, controls=selection, out=out / "audit")
    assert one(audit, control, "check")["status"] == "fail"
    original = normalized_facts(inv, host, selection)

    before = lab_exec(host, SNAPSHOT).stdout
    dry = api.execute("remediate", inv, controls=selection, dry_run=True, out=out / "dry")
    assert one(dry, control, "fix")["status"] == "would_fix"
    assert lab_exec(host, SNAPSHOT).stdout == before, "dry run changed the host"

    fixed = api.execute("remediate", inv, controls=selection, out=out / "fix")
    fix_row = one(fixed, control, "fix")
    assert fix_row["status"] == "fixed", fix_row["message"]
    assert fix_row["changed"] is True
    assert one(fixed, control, "verify")["status"] == "pass"
    if control == "etcd-tls":  # the network agrees: no plain http, no https without a client certificate
        address = next(h.address for h in lab.hosts if h.name == host)
        probe = lab_exec(host, f"""
            curl -s -m 3 http://{address}:2379/version >/dev/null; echo "http=$?"
            curl -s -m 3 -k https://{address}:2379/version >/dev/null; echo "nocert=$?"
            curl -sf -m 3 --cacert /etc/ssl/etcd/ca.pem --cert /etc/ssl/etcd/client.pem \
                 --key /etc/ssl/etcd/client-key.pem https://{address}:2379/version >/dev/null; echo "cert=$?"
        """).stdout.split()
        assert "http=0" not in probe and "nocert=0" not in probe and "cert=0" in probe, probe
    if control in ("fleet-etcd-tls", "locksmith-etcd-tls"):  # the running daemon points at https
        unit = "fleet.service" if control == "fleet-etcd-tls" else "locksmithd.service"
        env = lab_exec(host, f"tr '\\0' '\\n' < /proc/$(systemctl show -p MainPID {unit} | cut -d= -f2)/environ")
        assert "=https://" in env.stdout and "CAFILE=/etc/ssl/etcd/ca.pem" in env.stdout, env.stdout
    if control == "core-wheel":  # core has no sudo any more: from now on the operator uses the fallback admin
        inv = inventory_for(lab, tmp_path, host, username="ops", hardnir_deadman_seconds=60, **data)

    again = api.execute("remediate", inv, controls=selection, out=out / "again")
    assert one(again, control, "check")["status"] == "pass"
    assert one(again, control, "fix")["status"] == "unchanged"
    assert one(again, control, "fix")["changed"] is False

    undo = api.execute("rollback", inv, target_run=out / "fix", out=out / "rollback")
    assert one(undo, control, "rollback")["status"] == "restored"
    assert normalized_facts(inv, host, selection) == original

    after = api.execute("audit", inv, controls=selection, out=out / "after")
    assert one(after, control, "check")["status"] == "fail"
    undo_again = api.execute("rollback", inv, target_run=out / "fix", out=out / "rollback2")
    assert one(undo_again, control, "rollback")["status"] == "unchanged"
