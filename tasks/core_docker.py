"""core-docker: `core` cannot reach the docker socket (guide: Docker Daemon).

Access to `/run/docker.sock` is root. The guide's `gpasswd -d core docker` does not take effect on Container
Linux or Flatcar (docker:x:233:core also lives in the read-only group database), so the ground truth is whether
core can write the live socket (`sudo -u core test -w`), plus any `o+w` mode.
Fix (Flatcar's documented one): a `docker.socket.d/90-hardnir-root-only.conf` drop-in (`SocketGroup=root`) so the
socket is root-only whenever systemd re-creates it, and `chown root:root` + `chmod 0660` on the live socket for
an immediate effect without restarting docker (and its containers). Also `gpasswd -d core docker` on the
/etc/group copy. Rollback removes the drop-in, restores the live socket's owner and mode, re-adds the member.
Live listeners: core can connect only when something listens (`ss -lxp`: dockerd through docker.socket, or a
dockerd that holds the socket itself); a stale socket file with nobody listening fails only if docker.socket would
re-create it within core's reach.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from typing import Any

from hardnir import accounts, filesafe, live
from hardnir.control import ControlMeta, Exec, Finding, Plan, Step, not_applicable, write_if_changed
from hardnir.facts import Facts, SocketFact
from hardnir.params import Param
from hardnir.probe import file_item, listen_item, socket_item, unit_item

META = ControlMeta(
    id="core-docker",
    title="core cannot reach the docker socket",
    section="Docker Daemon",
    severity="high",
    disruption="low",
    platforms=("coreos", "flatcar", "fcos"),
    rationale="the docker socket grants root: `docker run -v /:/host` is sudo without a password or a log.",
    remediation="`docker.socket` drop-in `SocketGroup=root`, and the live socket made root-only without "
    "restarting docker",
    references=(
        "CoreOS Hardening Guide: Local Services / Docker Daemon",
    ),
    version="1",
    order=60,
)

PARAMS = (
    Param("user", "user", "core", "the user who must not reach the docker socket"),
    Param("socket", "path", "/run/docker.sock", "the docker API socket's path"),
)
DROPIN = "/etc/systemd/system/docker.socket.d/90-hardnir-root-only.conf"
CONTENT = filesafe.dropin("Socket", [("SocketMode", "0660"), ("SocketUser", "root"), ("SocketGroup", "root")])
SHAPES = {DROPIN: filesafe.DropinShape("Socket", frozenset({"SocketMode", "SocketUser", "SocketGroup"}))}


def probe_items(params: Mapping[str, Any]) -> list[tuple[str, str]]:
    user = str(params["user"])
    return [
        *accounts.user_items(user),
        unit_item("docker.socket"),
        unit_item("docker.service"),
        socket_item(str(params["socket"]), user),
        listen_item(str(params["socket"])),
        file_item(DROPIN),
    ]


def check(facts: Facts, params: Mapping[str, Any]) -> Finding:
    user = str(params["user"])
    expected = f"{user} cannot write the docker socket"
    unit = facts.unit("docker.socket")
    sock = facts.socket(str(params["socket"]))
    listening = facts.listening(str(params["socket"]))
    if not accounts.user_exists(facts, user):
        return not_applicable(expected, f"no user {user}")
    if not unit.exists and not sock.present and not listening.listening:
        return not_applicable(expected, "docker is not installed (no docker.socket, no socket file)")
    groups = accounts.effective_groups(facts, user)
    evidence = {
        "socket": sock.describe,
        "writable by user": sock.user_writable,
        "listening": listening.describe,
        "user can connect": live.can_connect(sock, listening),
        "id -nG": groups,
        "docker listed in": accounts.listed_in(facts, user, "docker"),
        "SocketMode": unit.get("SocketMode"),
        "SocketGroup": unit.get("SocketGroup"),
        "drop_ins": unit.drop_ins,
    }
    in_group = "docker" in groups
    observed = f"socket {sock.describe}" + ("; in docker group" if in_group else "")
    if listening.probed and not listening.listening:
        return _idle_verdict(facts, user, sock, (expected, observed), evidence)
    held = f" ({live.holders_text(listening)})" if listening.listening else ""
    if sock.present and sock.mode and int(sock.mode, 8) & 0o002:
        return Finding("fail", expected, observed, f"the docker socket is world-writable{held}", evidence)
    if sock.user_writable:
        return Finding("fail", expected, observed, f"{user} can write {sock.path} (root-equivalent){held}",
                       evidence)
    if not sock.present and in_group and unit.get("SocketGroup") == "docker":
        return Finding("fail", expected, observed,
                       f"socket not live now, but systemd will create it for group docker, which {user} is in",
                       evidence)
    note = "; still in docker group, harmless while the socket is root-only" if in_group else ""
    return Finding("pass", expected, observed, f"{user} cannot reach the docker socket{note}", evidence)


def _idle_verdict(facts: Facts, user: str, sock: SocketFact, wording: tuple[str, str],
                  evidence: dict[str, Any]) -> Finding:
    """Nothing listens on the docker socket: nobody can connect now. Fails only if docker.socket would create
    it within the user's reach (world-writable, or for a group the user is in), saying both facts."""
    expected, observed = wording
    unit = facts.unit("docker.socket")
    mode = unit.get("SocketMode") or "0666"
    bits = int(mode, 8) if mode.isdigit() and set(mode) <= set("01234567") else 0o666  # garbled: assume the worst
    owner, group = unit.get("SocketUser") or "root", unit.get("SocketGroup") or "root"
    groups = accounts.effective_groups(facts, user)
    reach = bits & 0o002 or (bits & 0o020 and group in groups) or owner == user
    stale = f" (a stale file {sock.describe} is left)" if sock.present else ""
    if unit.exists and not unit.masked and reach:
        idle = live.idle_note(sock.path, unit, facts.unit("docker.service")) or f"nothing listens on {sock.path} now"
        return Finding("fail", expected, observed, f"{idle}, and docker.socket would create it {mode} "
                       f"{owner}:{group}, which {user} can reach{stale}", evidence)
    why = "docker.socket is masked" if unit.masked else f"docker.socket would create it {mode} {owner}:{group}"
    return Finding("pass", expected, observed, f"nothing listens on {sock.path}; {why}{stale}", evidence)


def plan_fix(facts: Facts, params: Mapping[str, Any]) -> Plan:
    user = str(params["user"])
    if check(facts, params).status != "fail":
        return Plan()
    steps: list[Step] = write_if_changed(facts, DROPIN, CONTENT)
    sock = facts.socket(str(params["socket"]))
    post: tuple[str, ...] = ("systemctl daemon-reload",)
    if sock.present:
        path = shlex.quote(sock.path)
        steps.append(
            Exec(
                command=f"chown root:root {path} && chmod 0660 {path}",
                undo=f"chown {shlex.quote(sock.owner + ':' + sock.group)} {path} && chmod {sock.mode} {path}",
                why="make the live socket root-only now, without restarting docker",
            )
        )
    steps += accounts.remove_from_etc_group(facts, user, "docker")
    return Plan(steps=tuple(steps), post=post, rollback_post=("systemctl daemon-reload",),
                note="effective now for new connections; running sessions keep their groups")
