"""sshd-socket: sshd must not listen on all interfaces (guide: Remote Listening Services, Disabling sshd).

CoreOS socket-activates sshd: `sshd.socket` (ListenStream=22, i.e. `[::]:22` dual-stack, owned by pid 1), enabled
by a vendor symlink, so `is-enabled` says little. The check judges the effective Listen list and the live
listeners (`ss`), never the word "enabled". Two policies:
- `restricted` (default): every Listen entry is one of `listen` (default `{address}:22`, the address the tool
  connects to). Fix: a `90-hardnir-listen.conf` drop-in that empties the list (`ListenStream=`) and sets the
  allowed entries with `FreeBind=true`, then restarts the socket. Existing sessions survive the restart.
- `disabled` (the guide's literal fix): mask the socket. That removes the tool's own way in, so it is blocked
  unless a verified fallback path exists or the operator passes --allow-lockout.
Both are network changes: a dead-man timer restores the old state unless a fresh SSH login works afterwards.
Live listeners: whatever holds a TCP listener on the ssh ports now (`ss -ltnp`: systemd for the socket, or an
sshd.service that holds :22 itself or inherited it from an `Accept=no` socket) is judged against the policy too,
so a masked socket with a live sshd still fails, naming the process and unit. With policy `restricted`, a service
holding a wildcard listener itself blocks the fix (restarting the socket would not close it; stopping the service
from this session would cut the session), with that said.
Rollback restores the backed-up unit files and restarts sshd.socket.
Flatcar: same model (sshd.socket). Its /etc/ssh/sshd_config is a symlink into read-only /usr; this control never
edits sshd_config, so the link stays. Fedora CoreOS runs sshd.service, not the socket: `hardnir.sshd_service`
judges and restricts it through an sshd_config.d drop-in.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from typing import Any

from hardnir import filesafe, live, sshd_service
from hardnir.control import ControlMeta, Exec, Finding, Plan, Remove, Step, Symlink, not_applicable, write_if_changed
from hardnir.facts import (
    Facts,
    LiveListener,
    describe_holders,
    is_wildcard_listen,
    listen_policy_problem,
    listen_port,
)
from hardnir.params import PLACEHOLDER, Param
from hardnir.probe import file_item, listen_item, unit_item

META = ControlMeta(
    id="sshd-socket",
    title="sshd does not listen on all interfaces",
    section="Remote Listening Services: Disabling sshd",
    severity="high",
    disruption="medium",
    platforms=("coreos", "flatcar", "fcos"),
    rationale="sshd on port 22 of every interface is the only remote listener CoreOS ships; restrict it to "
    "the management address, or disable it where a console is the way in.",
    remediation="restrict sshd.socket to the policy addresses with a `90-hardnir-listen.conf` drop-in "
    "(`ListenStream=` reset) and restart it under a dead-man timer, or mask it (lockout-guarded)",
    references=(
        "CoreOS Hardening Guide: Remote Listening Services / Disabling sshd",
        "https://coreos.com/os/docs/latest/customizing-sshd.html",
    ),
    version="1",
    order=90,
    lockout_risk=True,
)

PARAMS = (
    Param("policy", "choice", "restricted", "restricted: listen only on `listen`; disabled: mask sshd.socket "
          "(lockout-guarded)", choices=("restricted", "disabled")),
    Param("listen", "listen_list", ["{address}:22"], "the Listen entries to keep (policy restricted); "
          "{address} is the inventory hostname, which must then be an IP address"),
)
SHARED = ("hardnir_deadman_seconds",)

UNIT_PATH = "/etc/systemd/system/sshd.socket"
DROPIN = "/etc/systemd/system/sshd.socket.d/90-hardnir-listen.conf"
SHAPES = {
    DROPIN: filesafe.DropinShape("Socket", frozenset({"ListenStream", "FreeBind"})),
    sshd_service.DROPIN: filesafe.LinesShape(sshd_service.LISTEN_LINE),  # Fedora CoreOS
}


def probe_items(params: Mapping[str, Any]) -> list[tuple[str, str]]:
    return [unit_item("sshd.socket"), unit_item("sshd.service"), file_item(UNIT_PATH), file_item(DROPIN),
            *sshd_service.probe_items(), *(listen_item(f"tcp:{port}") for port in ssh_ports(params))]


def ssh_ports(params: Mapping[str, Any]) -> list[str]:
    """The TCP ports whose live listeners are judged: 22 and every port of the policy's listen list."""
    ports = {listen_port(a) for a in allowed_listen(params) if listen_port(a).isdigit()}
    return sorted(ports | {"22"}, key=int)


def allowed_listen(params: Mapping[str, Any]) -> list[str]:
    return [str(entry) for entry in params["listen"]]


def check(facts: Facts, params: Mapping[str, Any]) -> Finding:
    if facts.platform == "fcos":  # sshd.service, configured in sshd_config.d (hardnir.sshd_service)
        return sshd_service.check(facts, params)
    sock = facts.unit("sshd.socket")
    svc = facts.unit("sshd.service")
    policy = str(params["policy"])
    allowed = allowed_listen(params)
    expected = "masked and inactive" if policy == "disabled" else f"listen only on {', '.join(allowed)}"
    listen = sock.listen
    ports = {listen_port(e) for e in listen} | {"22"}
    live_wild = [a for a in facts.listeners if is_wildcard_listen(a) and listen_port(a) in ports]
    evidence: dict[str, Any] = {
        "policy": policy,
        "LoadState": sock.load_state,
        "ActiveState": sock.active_state,
        "IsEnabled": sock.is_enabled,
        "Listen": listen,
        "FragmentPath": sock.get("FragmentPath"),
        "DropInPaths": sock.drop_ins,
        "live_wildcard_listeners": live_wild,
        "sshd.service": svc.active_state,
    }
    if not sock.probed:
        return Finding("error", expected, "unknown", "sshd.socket was not probed", evidence)
    if not sock.exists and not svc.active:
        return not_applicable(expected, "no sshd.socket and sshd.service is not running", evidence)
    if svc.active:
        live_finding = _live_verdict(facts, params, expected, evidence)
        if live_finding is not None:
            return live_finding
        wild = [a for a in facts.listeners if is_wildcard_listen(a) and listen_port(a) == "22"]
        if policy == "disabled" or wild:
            return Finding(
                "fail", expected, "sshd.service running" + (f" on {', '.join(wild)}" if wild else ""),
                "sshd.service (not the socket) is active" + ("; it listens on all interfaces" if wild else ""),
                evidence,
            )
    if sock.masked:
        if sock.is_enabled == "masked-runtime":
            return Finding("fail", expected, "masked-runtime", "masked in /run only: lost at reboot", evidence)
        if sock.active:
            return Finding("fail", expected, "masked but still active", "masked but not stopped", evidence)
        return _live_verdict(facts, params, expected, evidence) or Finding(
            "pass", expected, "masked", "sshd.socket is masked and inactive", evidence)
    observed = ", ".join(listen) or "no Listen entries"
    note = _idle_ssh(facts, params)
    if sock.get("FragmentPath") == UNIT_PATH:
        note += "; note: a full copy in /etc hides vendor fixes (TriggerLimitBurst=0)"
    if policy == "disabled":
        return Finding("fail", expected, observed, f"sshd.socket is not masked{note}", evidence)
    problem = listen_policy_problem(listen, allowed)
    if problem:
        return Finding("fail", expected, observed, problem + (note if problem.startswith("listens") else ""),
                       evidence)
    live_finding = _live_verdict(facts, params, expected, evidence)
    if live_finding is not None:
        return live_finding
    probed = all(facts.listening(f"tcp:{port}").probed for port in ssh_ports(params))
    if live_wild and sock.active and not probed:  # without live holders: judge `ss -ltn` alone
        return Finding("fail", expected, observed + f" (live: {', '.join(live_wild)})",
                       "configured correctly but the live socket still listens on all interfaces "
                       "(restart of sshd.socket pending)", evidence)
    return Finding("pass", expected, observed, f"sshd.socket listens only on policy addresses{note}", evidence)


def _live_verdict(facts: Facts, params: Mapping[str, Any], expected: str, evidence: dict[str, Any]) -> Finding | None:
    """What listens on the ssh ports now, judged against the policy; None when nothing live objects (or the
    live listeners were not probed). Adds them to the evidence."""
    policy = str(params["policy"])
    allowed = {a.replace("[", "").replace("]", "") for a in allowed_listen(params)}
    probed = [facts.listening(f"tcp:{port}") for port in ssh_ports(params)]
    found = [lst for fact in probed for lst in fact.listeners]
    evidence["live_ssh_listeners"] = {lst.address: [h.describe for h in lst.holders] for lst in found}
    bad = [lst for lst in found if policy == "disabled" or is_wildcard_listen(lst.address)
           or lst.address.replace("[", "").replace("]", "") not in allowed]
    if bad:
        return _live_failure(facts, bad, expected, evidence)
    if policy == "disabled" and probed and all(fact.probed for fact in probed):
        states = live.unit_states(facts.unit("sshd.service"))
        if states:
            return Finding("fail", expected, "nothing listens; " + ", ".join(states),
                           f"{live.idle_note('the ssh ports', facts.unit('sshd.service'))}: it listens again at "
                           "its next start", evidence)
    return None


def _idle_ssh(facts: Facts, params: Mapping[str, Any]) -> str:
    """`; nothing listens on the ssh ports now, but sshd.socket is active` (both facts), or ''."""
    probed = [facts.listening(f"tcp:{port}") for port in ssh_ports(params)]
    if not all(fact.probed for fact in probed) or any(fact.listening for fact in probed):
        return ""
    idle = live.idle_note("the ssh ports", facts.unit("sshd.socket"), facts.unit("sshd.service"))
    return f"; {idle}" if idle else ""


def _live_failure(facts: Facts, bad: list[LiveListener], expected: str, evidence: dict[str, Any]) -> Finding:
    sock = facts.unit("sshd.socket")
    addresses = ", ".join(lst.address for lst in bad)
    holders = describe_holders(list(dict.fromkeys(h for lst in bad for h in lst.holders))) or "an unknown process"
    observed = f"live: {addresses} held by {holders}"
    if all(h.is_pid1 for lst in bad for h in lst.holders) and sock.active and not sock.masked:
        return Finding("fail", expected, observed, "configured correctly but the live socket still listens on "
                       f"{addresses} (restart of sshd.socket pending)", evidence)
    prefix = "sshd.socket is masked, but " if sock.masked else ""
    return Finding("fail", expected, observed, f"{prefix}{holders} listens on {addresses}", evidence)


def plan_fix(facts: Facts, params: Mapping[str, Any]) -> Plan:
    if facts.platform == "fcos":
        return sshd_service.plan_fix(facts, params)
    if check(facts, params).status != "fail":
        return Plan()
    policy = str(params["policy"])
    sock = facts.unit("sshd.socket")
    rollback_post = ("systemctl daemon-reload", "systemctl restart sshd.socket")
    if policy == "disabled":
        current = facts.file(UNIT_PATH)
        if current.kind == "link" and current.target == "/dev/null":
            steps: list[Step] = []
        else:
            steps = []
            if current.exists:
                steps.append(Remove(UNIT_PATH, old=current.kind))
            steps.append(Symlink(UNIT_PATH, "/dev/null", old=current.kind))
        was_masked = not steps
        steps += _close_live_sshd(facts, params)
        post = ("systemctl daemon-reload", "systemctl stop sshd.socket") if steps or sock.active else ()
        return Plan(
            steps=tuple(steps),
            post=post,
            rollback_post=("systemctl daemon-reload",) if was_masked else rollback_post,
            lockout="masking sshd.socket stops every new SSH login, including this tool's",
            deadman=True,
        )
    allowed = allowed_listen(params)
    if any(PLACEHOLDER in a for a in allowed):
        return Plan(blocked="sshd_socket.listen must name the addresses to keep, e.g. ['10.0.0.5:22'] (the "
                    "hostname is not an IP address, so {address} cannot be used)")
    if any(is_wildcard_listen(a) for a in allowed):
        return Plan(blocked=f"sshd_socket.listen contains a wildcard: {', '.join(allowed)}")
    held = _wildcard_held_by_services(facts, params)
    if held:
        return Plan(blocked=f"{held} holds a wildcard listener on the ssh port itself (sshd.service, or a "
                    "descriptor it inherited from an Accept=no socket); restarting sshd.socket would not close "
                    "it, and stopping that service from this session would cut the session: stop it from the "
                    "console, then run remediate again")
    content = filesafe.dropin(
        "Socket", [("ListenStream", ""), *(("ListenStream", a) for a in allowed), ("FreeBind", "true")]
    )
    steps = write_if_changed(facts, DROPIN, content)
    needs_restart = bool(steps) or check(facts, params).status == "fail"
    lockout = ""
    address = str(params.get("address", ""))
    if address and not any(a.rpartition(":")[0].strip("[]") == address for a in allowed):
        lockout = f"the new listen list {', '.join(allowed)} does not include {address}, the address used now"
    return Plan(
        steps=tuple(steps),
        post=("systemctl daemon-reload", "systemctl restart sshd.socket") if needs_restart else (),
        rollback_post=rollback_post,
        lockout=lockout,
        deadman=True,
    )


def _wildcard_held_by_services(facts: Facts, params: Mapping[str, Any]) -> str:
    """Who (not systemd) holds a wildcard listener on the ssh ports now, described; '' when nobody does."""
    holders = [h for port in ssh_ports(params) for lst in facts.listening(f"tcp:{port}").listeners
               if is_wildcard_listen(lst.address) for h in lst.holders if not h.is_pid1]
    return describe_holders(list(dict.fromkeys(holders)))


def _close_live_sshd(facts: Facts, params: Mapping[str, Any]) -> list[Step]:
    """Policy disabled: the services that still listen on the ssh ports (an sshd.service that holds :22, or
    inherited it from an Accept=no socket) are stopped, and an enabled sshd.service is disabled, so nothing
    listens now or after a reboot. Undone by starting / enabling them again."""
    holders = [facts.listening(f"tcp:{port}") for port in ssh_ports(params)]
    units = list(dict.fromkeys(u for fact in holders for u in fact.units_holding()))
    steps: list[Step] = []
    if units:
        names = " ".join(shlex.quote(u) for u in units)
        steps.append(Exec(command=f"systemctl stop {names}", undo=f"systemctl start {names}",
                          why=f"{', '.join(units)} still listen on the ssh ports"))
    if facts.unit("sshd.service").is_enabled == "enabled":
        steps.append(Exec(command="systemctl disable sshd.service", undo="systemctl enable sshd.service",
                          why="sshd.service would listen again at boot"))
    return steps
