"""The dead-man check: after a fix that can break SSH logins, a brand-new login must work, or a timer armed on
the host restores the previous state by itself."""

from __future__ import annotations

from hardnir import fixes
from hardnir.ssh import HardnirConnection, SSHError

DEFAULT_DEADMAN_SECONDS = 120


def confirm_new_login(conn: HardnirConnection, run_id: str, control_id: str) -> tuple[bool, str]:
    """Open a brand-new SSH connection; only if it works, disarm the dead-man timer."""
    unit = fixes.deadman_unit(run_id, control_id)
    try:
        fresh = conn.fresh()
        try:
            fresh.run("true", timeout=15)
        finally:
            fresh.close()
    except SSHError as exc:
        return False, f"a fresh SSH login failed after the change ({exc}); the dead-man timer {unit} will " \
                      "restore the previous state"
    stop = conn.run(f"systemctl stop {unit}.timer; systemctl reset-failed {unit}.timer {unit}.service "
                    "2>/dev/null; true", sudo=True, timeout=30)
    if not stop.ok:
        return False, "fresh login worked but the dead-man timer could not be disarmed"
    return True, "fresh SSH login verified; dead-man timer disarmed"
