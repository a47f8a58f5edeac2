"""fleet-socket: the fleet API socket is masked, or root-only (guide: fleet API Socket).

`fleet.socket` binds `/var/run/fleet.sock` with no SocketMode, so systemd's default 0666 applies: any local user
can drive fleet, which runs units as root cluster-wide. The check reads the live inode, not just the unit:
`daemon-reload` alone does not re-create a bound socket, so a drop-in without a restart still fails.
Fix, policy `restricted` (default; the old spelling `restrict` is still accepted but deprecated): the guide's
`fleet.socket.d/10-root-only.conf` (or `90-hardnir-root-only.conf` when a foreign 10-root-only.conf exists),
plus a `ListenStream=` reset if a TCP listener was added; then `stop fleet.service; restart fleet.socket; start
fleet.service` (as the fleet docs prescribe) so the live socket becomes 0600 root:root.
Policy `mask`: link the unit to /dev/null and stop it.
Live listeners: the socket is `PartOf=fleet.service`, so stopping (or masking) fleet.socket does not stop
fleet.service, which keeps the listening descriptor it inherited: `/run/fleet.sock` stays live, 0666. The check
judges what listens (`ss -lxp`: which process and unit hold it, can core connect), so a masked unit that still has
a live listener fails. Both policies then restart the service that holds the inherited descriptor (with the
socket masked or stopped it comes back without it) and prove that nothing listens any more; rollback re-creates
the inherited listener when the socket was already masked before the fix.
Rollback removes what was written and restarts the socket the same way.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from typing import Any

from hardnir import filesafe, live
from hardnir.control import ControlMeta, Exec, Finding, Plan, Remove, Step, Symlink, not_applicable, write_if_changed
from hardnir.facts import Facts, ListenFact, SocketFact
from hardnir.params import Param
from hardnir.probe import file_item, listen_item, socket_item, unit_item

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
    "if systemctl -q is-active fleet.socket || systemctl -q is-active fleet.service; then svc=0; "
    "systemctl -q is-active fleet.service && svc=1; "
    "systemctl stop fleet.service; systemctl restart fleet.socket; [ $svc = 1 ] && systemctl start fleet.service; "
    "fi; true",
)
EXPECTED = "masked, or live socket 0600 root:root and no TCP listener"


def probe_items(params: Mapping[str, Any]) -> list[tuple[str, str]]:
    return [
        unit_item("fleet.socket"),
        unit_item("fleet.service"),
        socket_item(str(params["socket"])),
        listen_item(str(params["socket"])),
        file_item(UNIT_PATH),
        file_item(GUIDE_DROPIN),
        file_item(OWN_DROPIN),
    ]


def _unix(entry: str) -> bool:
    return entry.startswith("/")


def check(facts: Facts, params: Mapping[str, Any]) -> Finding:
    unit = facts.unit("fleet.socket")
    sock = facts.socket(str(params["socket"]))
    listening = facts.listening(str(params["socket"]))
    evidence = {
        "LoadState": unit.load_state,
        "ActiveState": unit.active_state,
        "Listen": unit.listen,
        "SocketMode": unit.get("SocketMode"),
        "SocketUser": unit.get("SocketUser"),
        "SocketGroup": unit.get("SocketGroup"),
        "live": sock.describe,
        "listening": listening.describe,
        "core can write": sock.user_writable,
        "core can connect": live.can_connect(sock, listening),
        "fleet.service": facts.unit("fleet.service").active_state,
        "drop_ins": unit.drop_ins,
    }
    if not unit.exists and not sock.present and not listening.listening:
        return not_applicable(EXPECTED, "fleet is not installed", evidence)
    if unit.masked:
        return _masked_verdict(facts, sock, listening, evidence)
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
    stale = sock.present and listening.probed and not listening.listening
    if sock.present and not stale:
        held = f" ({live.holders_text(listening)})" if listening.listening else ""
        if sock.mode == "600" and sock.owner == "root" and sock.group == "root":
            note = "" if config_ok else "; the unit would re-create it with other permissions"
            status = "pass" if config_ok else "fail"
            return Finding(status, EXPECTED, observed, f"live socket is root-only{held}{note}", evidence)
        if config_ok:
            return Finding("fail", EXPECTED, observed, "configured root-only but the live socket was not "
                           f"re-created (restart pending){held}", evidence)
        return Finding("fail", EXPECTED, observed, f"live {sock.path} is {sock.describe}{held}", evidence)
    idle = live.idle_note(sock.path, unit, facts.unit("fleet.service")) or "not live now"
    if config_ok:
        return Finding("pass", EXPECTED, observed, f"{idle}; configured root-only", evidence)
    return Finding("fail", EXPECTED, observed, f"{idle}, and it would be created with {configured}", evidence)


def _masked_verdict(facts: Facts, sock: SocketFact, listening: ListenFact, evidence: dict[str, Any]) -> Finding:
    """A masked fleet.socket passes only when nothing listens on its path any more."""
    unit = facts.unit("fleet.socket")
    if listening.listening:
        reach = {True: "core can connect", False: "core cannot connect", None: "core's access unknown"}
        why = ("still holds the listening socket it inherited" if listening.inheritors and not unit.active
               else "still listens (the socket was masked but not stopped)")
        return Finding("fail", EXPECTED, f"masked, but live {sock.describe} ({live.holders_text(listening)})",
                       f"fleet.socket is masked, but {live.holders_text(listening)} {why} on {listening.target} "
                       f"({sock.describe}); {reach[live.can_connect(sock, listening)]}", evidence)
    if unit.is_enabled == "masked-runtime":
        return Finding("fail", EXPECTED, "masked-runtime", "masked in /run only: lost at reboot", evidence)
    if unit.active:
        return Finding("fail", EXPECTED, "masked but still active", "masked but not stopped", evidence)
    if not listening.probed:
        return Finding("pass", EXPECTED, "masked", "fleet.socket is masked (live listeners not probed)", evidence)
    return Finding("pass", EXPECTED, "masked", f"fleet.socket is masked and nothing listens on "
                   f"{listening.target}", evidence)


def plan_fix(facts: Facts, params: Mapping[str, Any]) -> Plan:
    if check(facts, params).status != "fail":
        return Plan()
    policy = str(params["policy"])
    unit = facts.unit("fleet.socket")
    if policy == "mask" or unit.masked:  # a masked socket is finished the mask's way under either policy
        return _mask_plan(facts, params)
    entries = list(ROOT_ONLY)
    if any(not _unix(e) for e in unit.listen):
        entries += [("ListenStream", ""), ("ListenStream", str(params["socket"]))]
    content = filesafe.dropin("Socket", entries)
    guide = facts.file(GUIDE_DROPIN)
    path = GUIDE_DROPIN if not guide.exists or guide.content == content else OWN_DROPIN
    steps = write_if_changed(facts, path, content)
    return Plan(steps=tuple(steps), post=RESTART, rollback_post=RESTART)


def _mask_plan(facts: Facts, params: Mapping[str, Any]) -> Plan:
    """Mask fleet.socket in /etc, stop it, restart every service that holds the listener it inherited, and
    prove that nothing listens on the path any more."""
    path = str(params["socket"])
    current = facts.file(UNIT_PATH)
    was_masked = current.kind == "link" and current.target == "/dev/null"
    steps: list[Step] = []
    if not was_masked:
        if current.exists:
            steps.append(Remove(UNIT_PATH, old=current.kind))
        steps.append(Symlink(UNIT_PATH, "/dev/null", old=current.kind))
    listening = facts.listening(path)
    strangers = [h for h in listening.inheritors if not h.unit.endswith(".service")]
    if strangers:
        return Plan(blocked=f"{path} is held by {', '.join(h.describe for h in strangers)}, which is no "
                    "service this fix can restart; stop it by hand")
    services = listening.units_holding() if listening.probed else (
        ["fleet.service"] if facts.unit("fleet.service").active else [])
    if services:
        steps.append(_close_inherited(services, was_masked))
    return Plan(
        steps=tuple(steps),
        post=("systemctl daemon-reload", "systemctl stop fleet.socket", live.unix_listening_command(path)),
        rollback_post=() if was_masked else ("systemctl daemon-reload", "systemctl restart fleet.socket",
                                             "systemctl try-restart fleet.service"),
        note="local fleetctl now needs `sudo fleetctl --driver=etcd`",
    )


def _close_inherited(services: list[str], was_masked: bool) -> Exec:
    """Restart the services that hold fleet.sock's listening descriptor: with the socket masked and stopped they
    come back without it. Undo: when the socket was masked before, re-create that state exactly (unmask, start
    the socket and the services so they inherit it again, mask and stop the socket); otherwise the rollback's
    socket restart hands it back."""
    units = " ".join(shlex.quote(s) for s in services)
    command = f"systemctl daemon-reload && systemctl stop fleet.socket && systemctl restart {units}"
    undo = "true"
    if was_masked:
        link = shlex.quote(UNIT_PATH)
        undo = (f"rm -f {link} && systemctl daemon-reload && systemctl stop {units} && systemctl start fleet.socket "
                f"&& systemctl start {units}; rc=$?; ln -sfn /dev/null {link}; systemctl daemon-reload; "
                "systemctl stop fleet.socket; exit $rc")
    return Exec(command=command, undo=undo,
                why=f"{', '.join(services)} still hold the listening socket inherited from fleet.socket: restart "
                "without it")
