"""The hardnir lab: CoreOS-like hosts booted with systemd-nspawn on this machine (see design.md, "The lab").

    info = up(hosts=10, seed=1)          # needs root; builds the image on first use
    lab_exec("lab-01", "id -nG core")    # root shell inside a host, without SSH
    reset_host("lab-01")                 # back to its seeded state
    down()
"""

from __future__ import annotations

from hardnir.lab.common import LabError
from hardnir.lab.hosts import lab_exec
from hardnir.lab.lifecycle import down, info, reset_host, status, up
from hardnir.lab.model import HostStatus, LabHost, LabInfo

__all__ = [
    "HostStatus",
    "LabError",
    "LabHost",
    "LabInfo",
    "down",
    "info",
    "lab_exec",
    "reset_host",
    "status",
    "up",
]
