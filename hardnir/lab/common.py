"""Where the lab keeps its things, its error type, and the one way it runs a command on the machine."""

from __future__ import annotations

import logging
import os
import shlex
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

log = logging.getLogger("hardnir.lab")

# Tools the lab needs on the machine; scripts/setup-host.sh installs them on Debian 12.
REQUIRED_TOOLS: tuple[str, ...] = ("systemd-nspawn", "ip", "nsenter", "mount", "umount", "ssh-keygen", "openssl")


class LabError(RuntimeError):
    """A lab operation failed. The message is one line meant for the operator."""


def cache_dir() -> Path:
    """The persistent cache: images, .deb downloads and the lab SSH key."""
    return Path(os.environ.get("HARDNIR_CACHE_DIR", "/var/cache/hardnir"))


def state_dir() -> Path:
    """The volatile state of the running lab (state file, tmpfs with overlays, PKI, host keys)."""
    return Path(os.environ.get("HARDNIR_LAB_STATE_DIR", "/run/hardnir-lab"))


def require_root() -> None:
    if os.geteuid() != 0:
        raise LabError("hardnir lab needs root")


def require_tools(tools: Sequence[str] = REQUIRED_TOOLS) -> None:
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        raise LabError(f"missing {', '.join(missing)}; run scripts/setup-host.sh")


#: How long a lab command may take. Generous: systemd in a container is slow when the machine is loaded (a
#: `daemon-reload` + `systemctl start` took over 30 s at load 12 on 2 cores), and a command that hangs is still caught.
COMMAND_TIMEOUT_S = 120.0


def run(
    argv: Sequence[str | os.PathLike[str]],
    *,
    input: str | None = None,
    check: bool = True,
    timeout: float | None = COMMAND_TIMEOUT_S,
    env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a command, capture its output, and turn failure into a one-line LabError."""
    args = [os.fspath(a) for a in argv]
    try:
        done = subprocess.run(
            args, input=input, capture_output=True, text=True, timeout=timeout, check=False, env=env
        )
    except FileNotFoundError:
        raise LabError(f"{args[0]} not found; run scripts/setup-host.sh") from None
    except subprocess.TimeoutExpired:
        raise LabError(f"{shlex.join(args)} timed out after {timeout} s") from None
    if check and done.returncode != 0:
        raise LabError(f"{shlex.join(args)} failed (rc={done.returncode}): {last_line(done.stderr or done.stdout)}")
    return done


def last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


def write_file(path: Path, content: str | bytes, mode: int = 0o644, uid: int = 0, gid: int = 0) -> None:
    """Write a file with exact mode and owner (umask-proof), creating missing parents as root 0755."""
    missing = [p for p in reversed(path.parents) if not p.exists()]
    for parent in missing:
        parent.mkdir()
        os.chmod(parent, 0o755)  # noqa: S103 - directories of a root filesystem
    data = content.encode() if isinstance(content, str) else content
    if path.is_symlink():
        path.unlink()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, mode)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fchown(fd, uid, gid)
        os.fchmod(fd, mode)
    finally:
        os.close(fd)


def mountpoints() -> list[str]:
    """Mount points of the machine's mount namespace, in mount order."""
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        if len(fields) > 4:
            points.append(_unescape_octal(fields[4]))
    return points


def _unescape_octal(field: str) -> str:
    """Undo the \\ooo escapes of /proc/self/mountinfo (space, tab, newline, backslash)."""
    if "\\" not in field:
        return field
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and field[i + 1 : i + 4].isdigit():
            out.append(chr(int(field[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)
