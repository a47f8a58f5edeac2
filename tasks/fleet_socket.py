"""fleet-socket: the fleet API socket is masked, or root-only (guide: fleet API Socket).

`fleet.socket` binds `/var/run/fleet.sock` with no SocketMode, so systemd's default 0666 applies: any local user
can drive fleet, which runs units as root cluster-wide. The check reads the live inode, not just the unit:
`daemon-reload` alone does not re-create a bound socket, so a drop-in without a restart still fails.
Fix, policy `restricted` (default; the old spelling `restrict` is still accepted but deprecated): the guide's
`fleet.socket.d/10-root-only.conf` (or `90-hardnir-root-only.conf` when a foreign 10-root-only.conf exists),
plus a `ListenStream=` reset if a TCP listener was added; then `stop fleet.service; restart fleet.socket; start
fleet.service` (as the fleet docs prescribe) so the live socket becomes 0600 root:root.
Policy `mask`: link the unit to /dev/null and stop it.
Rollback removes what was written and restarts the socket the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hardnir import filesafe
from hardnir.control import ControlMeta, Finding, Plan, Remove, Step, Symlink, not_applicable, write_if_changed
from hardnir.facts import Facts
from hardnir.params import Param
from hardnir.probe import file_item, socket_item, unit_item

META = ControlMeta(
    id="fleet-socket",
    title="fleet API socket is masked or root-only (0600 root:root)",
    section="fleet API Socket",
    severity="critical",
    disruption="medium",
    platforms=("coreos",),
    rationale="anyone who can write fleet.sock can schedule units that run as root on every host of the "
    "cluster.",
    remediation="the guide's `10-root-only.conf` drop-in (0600 root:root) and a real restart of fleet.socket; or "
    "mask it",
    references=(
        "CoreOS Hardening Guide: Local Services / fleet API Socket",
    ),
    version="1",
    order=40,
)

# Why the control does not apply elsewhere (hardnir.platforms): fleet left Container Linux in 2018
# (coreos/coreos-overlay 52c85ab8b) and was never part of Flatcar or Fedora CoreOS (fedora-coreos-docs migrate-cl).
PLATFORM_NOTES = {
    "flatcar": "fleet is not part of Flatcar (it was dropped from Container Linux before Flatcar forked)",
    "fcos": "fleet is not part of Fedora CoreOS",
}

PARAMS = (
    Param("policy", "choice", "restricted", "restricted: the socket is 0600 root:root; mask: fleet.socket is masked",
          choices=("restricted", "mask"), aliases=(("restrict", "restricted"),)),
    Param("socket", "path", "/run/fleet.sock", "the fleet API socket's path"),
)
UNIT_PATH = "/etc/systemd/system/fleet.socket"
GUIDE_DROPIN = "/etc/systemd/system/fleet.socket.d/10-root-only.conf"
OWN_DROPIN = "/etc/systemd/system/fleet.socket.d/90-hardnir-root-only.conf"
ROOT_ONLY = (("SocketMode", "0600"), ("SocketUser", "root"), ("SocketGroup", "root"))
_SHAPE = filesafe.DropinShape("Socket", frozenset({"SocketMode", "SocketUser", "SocketGroup", "ListenStream"}))
SHAPES = {GUIDE_DROPIN: _SHAPE, OWN_DROPIN: _SHAPE}
RESTART = (
    "systemctl daemon-reload",
    "if systemctl -q is-active fleet.socket; then svc=0; systemctl -q is-active fleet.service && svc=1; "
    "systemctl stop fleet.service; systemctl restart fleet.socket; [ $svc = 1 ] && systemctl start fleet.service; "
    "fi; true",
)
EXPECTED = "masked, or live socket 0600 root:root and no TCP listener"


def probe_items(params: Mapping[str, Any]) -> list[tuple[str, str]]:
    return [
        unit_item("fleet.socket"),
        socket_item(str(params["socket"])),
        file_item(UNIT_PATH),
        file_item(GUIDE_DROPIN),
        file_item(OWN_DROPIN),
    ]


def _unix(entry: str) -> bool:
    return entry.startswith("/")


def check(facts: Facts, params: Mapping[str, Any]) -> Finding:
    unit = facts.unit("fleet.socket")
    sock = facts.socket(str(params["socket"]))
    evidence = {
        "LoadState": unit.load_state,
        "ActiveState": unit.active_state,
        "Listen": unit.listen,
        "SocketMode": unit.get("SocketMode"),
        "SocketUser": unit.get("SocketUser"),
        "SocketGroup": unit.get("SocketGroup"),
        "live": sock.describe,
        "core can write": sock.user_writable,
        "drop_ins": unit.drop_ins,
    }
    if not unit.exists and not sock.present:
        return not_applicable(EXPECTED, "fleet is not installed", evidence)
    if unit.masked and not unit.active:
        if unit.is_enabled == "masked-runtime":
            return Finding("fail", EXPECTED, "masked-runtime", "masked in /run only: lost at reboot", evidence)
        return Finding("pass", EXPECTED, "masked", "fleet.socket is masked", evidence)
    tcp = [e for e in unit.listen if not _unix(e)]
    configured = (
        f"SocketMode={unit.get('SocketMode') or '0666'} "
        f"{unit.get('SocketUser') or 'root'}:{unit.get('SocketGroup') or 'root'}"
    )
    observed = f"live {sock.describe}; {configured}"
    if tcp:
        return Finding("fail", EXPECTED, observed, f"fleet API on TCP: {', '.join(tcp)} (no auth)", evidence)
    config_ok = unit.get("SocketMode") in ("0600", "600") and unit.get("SocketUser", "root") in ("root", "") \
        and unit.get("SocketGroup", "root") in ("root", "")
    if sock.present:
        if sock.mode == "600" and sock.owner == "root" and sock.group == "root":
            note = "" if config_ok else "; the unit would re-create it with other permissions"
            status = "pass" if config_ok else "fail"
            return Finding(status, EXPECTED, observed, f"live socket is root-only{note}", evidence)
        if config_ok:
            return Finding("fail", EXPECTED, observed,
                           "configured root-only but the live socket was not re-created (restart pending)", evidence)
        return Finding("fail", EXPECTED, observed, f"live {sock.path} is {sock.describe}", evidence)
    if config_ok:
        return Finding("pass", EXPECTED, observed, "not currently exposed; configured root-only", evidence)
    return Finding("fail", EXPECTED, observed, "not live now, but would be created with " + configured, evidence)


def plan_fix(facts: Facts, params: Mapping[str, Any]) -> Plan:
    if check(facts, params).status != "fail":
        return Plan()
    policy = str(params["policy"])
    unit = facts.unit("fleet.socket")
    if policy == "mask":
        current = facts.file(UNIT_PATH)
        steps: list[Step] = []
        if not (current.kind == "link" and current.target == "/dev/null"):
            if current.exists:
                steps.append(Remove(UNIT_PATH, old=current.kind))
            steps.append(Symlink(UNIT_PATH, "/dev/null", old=current.kind))
        return Plan(
            steps=tuple(steps),
            post=("systemctl daemon-reload", "systemctl stop fleet.socket"),
            rollback_post=("systemctl daemon-reload", "systemctl restart fleet.socket",
                           "systemctl try-restart fleet.service"),
            note="local fleetctl now needs `sudo fleetctl --driver=etcd`",
        )
    entries = list(ROOT_ONLY)
    if any(not _unix(e) for e in unit.listen):
        entries += [("ListenStream", ""), ("ListenStream", str(params["socket"]))]
    content = filesafe.dropin("Socket", entries)
    guide = facts.file(GUIDE_DROPIN)
    path = GUIDE_DROPIN if not guide.exists or guide.content == content else OWN_DROPIN
    steps = write_if_changed(facts, path, content)
    return Plan(steps=tuple(steps), post=RESTART, rollback_post=RESTART)
