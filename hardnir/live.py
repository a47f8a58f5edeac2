"""Live-listener wording and commands shared by the socket controls (fleet-socket, sshd-socket, core-docker).

A socket verdict is judged on what is live: who holds a listener on the path or port (`listen:` items), the
socket file's mode and owner, and whether the connecting user can reach it. Unit state alone is not enough: a
socket unit that is masked and stopped leaves any descriptor its service inherited open and listening.
"""

from __future__ import annotations

import shlex

from hardnir.facts import ListenFact, SocketFact, Unit, describe_holders
from hardnir.probe import listen_aliases


def can_connect(sock: SocketFact, live: ListenFact) -> bool | None:
    """Can the user connect to the unix socket now: something listens and the user may write the file.
    None when unknown (no access test for that user, or the live listeners were not probed)."""
    if live.probed and not live.listening:
        return False
    if not sock.present:
        return False if live.probed else None
    return sock.user_writable


def unit_states(*units: Unit) -> list[str]:
    """`fleet.socket is active`, `sshd.service is enabled` ...: the states that can (re)create a listener."""
    out = []
    for unit in units:
        states = [s for s, on in (("active", unit.active), ("enabled", unit.is_enabled in ("enabled",
                  "enabled-runtime"))) if on]
        if states and not unit.masked:
            out.append(f"{unit.name} is {' and '.join(states)}")
    return out


def idle_note(what: str, *units: Unit) -> str:
    """`nothing listens on X now, but fleet.socket is active`: both facts, plainly ('' when no unit is up)."""
    states = unit_states(*units)
    return f"nothing listens on {what} now, but {', '.join(states)}" if states else ""


def holders_text(live: ListenFact) -> str:
    return describe_holders(live.holders) or "an unknown process"


def unix_listening_command(path: str) -> str:
    """Exits 1 (with a message) while anything still listens on the unix socket `path` (or its /var/run twin)."""
    pattern = "|".join(shlex.quote(name) for name in listen_aliases(path))
    return (f"if ! ss -lnx | while read -r _n _s _r _q a _; do case $a in {pattern}) exit 1 ;; esac; done; "
            f"then echo {shlex.quote('still listening on ' + path)}; exit 1; fi")
