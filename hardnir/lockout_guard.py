"""The lockout guard: a fix that can cut off hardnir's own SSH or sudo needs a proven fallback admin path.

The inventory names it per host (`hardnir_fallback: {username, hostname?, port?, key_filename? ...}`).
"""

from __future__ import annotations

from collections.abc import Mapping

from nornir.core.task import Task

from hardnir.ssh import CONNECTION_NAME, HardnirConnection, SSHError


def fallback_connection(task: Task) -> HardnirConnection | None:
    """A connection over the inventory's fallback admin path (`hardnir_fallback`), or None if none is set."""
    fallback = task.host.get("hardnir_fallback")
    if not isinstance(fallback, Mapping) or not fallback.get("username"):
        return None
    params = task.host.get_connection_parameters(CONNECTION_NAME)
    extras = dict(params.extras or {})
    extras.update({k: v for k, v in fallback.items() if k not in ("username", "port", "hostname")})
    alt = HardnirConnection()
    alt.open(
        str(fallback.get("hostname") or params.hostname),
        str(fallback["username"]),
        None,
        int(fallback.get("port") or params.port or 22),
        None,
        extras,
    )
    return alt


def verify_fallback(task: Task) -> tuple[bool, str]:
    """Prove the fallback admin path can log in and use sudo."""
    try:
        alt = fallback_connection(task)
    except SSHError as exc:
        return False, f"fallback admin path failed: {exc}"
    if alt is None:
        return False, "no fallback admin path configured (hardnir_fallback)"
    try:
        result = alt.run("true", sudo=True, timeout=20)
        if not result.ok:
            return False, f"fallback {alt.login_user} logged in but sudo failed"
        return True, f"fallback admin {alt.login_user} verified (login + sudo)"
    except SSHError as exc:
        return False, f"fallback admin path failed: {exc}"
    finally:
        alt.close()
