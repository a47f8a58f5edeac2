"""The probe: one POSIX-sh script per host that prints every fact the selected controls need.

Gather once, evaluate many. Each probe item is a named shell command; the script runs them all in one SSH
round trip (as root through one `sudo -n`), and frames each output as `@@ <rc> <name>` followed by one line of
base64. Base64 framing means no output (ANSI escapes, NULs, a file that contains `@@`) can forge another item.
The script needs only sh, coreutils and systemctl: CoreOS has no Python.
"""

from __future__ import annotations

import base64
import binascii
import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

ITEM_MAX_BYTES = 256 * 1024

UNIT_PROPERTIES = (
    "Id",
    "LoadState",
    "ActiveState",
    "SubState",
    "UnitFileState",
    "FragmentPath",
    "DropInPaths",
    "Listen",
    "SocketMode",
    "SocketUser",
    "SocketGroup",
    "Environment",
    "EnvironmentFiles",
    "User",
    "MainPID",
    "TriggerLimitBurst",
)

_PRELUDE = r"""
export LC_ALL=C PATH=/usr/sbin:/usr/bin:/sbin:/bin SYSTEMD_PAGER= SYSTEMD_COLORS=0
T=$(mktemp 2>/dev/null || echo /tmp/hardnir-probe.$$)
trap 'rm -f "$T"' EXIT
_b64() { base64 -w0; }
_p() {
  ( eval "$2" ) </dev/null >"$T" 2>&1; _rc=$?
  printf '@@ %s %s\n' "$_rc" "$1"; head -c %(cap)d "$T" | _b64; echo
}
"""

UNIT_CMD = "systemctl show {props} {unit}; printf 'IsEnabled=%s\\n' \"$(systemctl is-enabled {unit} 2>&1)\""
FILE_CMD = (
    "f={path}; if [ -L \"$f\" ]; then printf 'type=link\\ntarget=%s\\n' \"$(readlink \"$f\")\"; "
    "elif [ -f \"$f\" ]; then printf 'type=file\\nstat=%s\\nsha256=%s\\n' "
    "\"$(stat -c '%a %U %G %s' \"$f\")\" \"$(sha256sum <\"$f\" | cut -d' ' -f1)\"; "
    "printf 'content='; head -c 65536 \"$f\" | _b64; echo; "
    "elif [ -e \"$f\" ]; then printf 'type=other\\nstat=%s\\n' \"$(stat -c '%F %a %U %G' \"$f\")\"; "
    "else echo type=missing; fi"
)
SOCKET_CMD = (
    "s={path}; if [ -S \"$s\" ]; then printf 'stat=%s\\n' \"$(stat -L -c '%a %U %G' \"$s\")\"; "
    "if id {user} >/dev/null 2>&1; then "
    "if sudo -n -u {user} test -w \"$s\" 2>/dev/null; then echo user_writable=yes; "
    "else echo user_writable=no; fi; fi; else echo stat=missing; fi"
)
PROCENV_CMD = (
    "P=$(systemctl show -p MainPID {unit} | cut -d= -f2); "
    "if [ -n \"$P\" ] && [ \"$P\" -gt 0 ] 2>/dev/null; then tr '\\0' '\\n' </proc/$P/environ; "
    "else exit 3; fi"
)
ENVFILES_CMD = (
    "systemctl show -p EnvironmentFiles {unit} | sed -n 's/^EnvironmentFiles=\\([^ ]*\\).*/\\1/p' | "
    "while read -r f; do printf '## %s\\n' \"$f\"; cat \"$f\" 2>/dev/null; echo; done"
)


def unit_item(unit: str) -> tuple[str, str]:
    props = " ".join(f"-p {p}" for p in UNIT_PROPERTIES)
    return f"unit:{unit}", UNIT_CMD.format(props=props, unit=shlex.quote(unit))


def file_item(path: str) -> tuple[str, str]:
    return f"file:{path}", FILE_CMD.format(path=shlex.quote(path))


def socket_item(path: str, user: str = "core") -> tuple[str, str]:
    return f"socket:{path}", SOCKET_CMD.format(path=shlex.quote(path), user=shlex.quote(user))


def procenv_item(unit: str) -> tuple[str, str]:
    return f"procenv:{unit}", PROCENV_CMD.format(unit=shlex.quote(unit))


def envfiles_item(unit: str) -> tuple[str, str]:
    return f"envfiles:{unit}", ENVFILES_CMD.format(unit=shlex.quote(unit))


def command_item(name: str, command: str) -> tuple[str, str]:
    return f"cmd:{name}", command


COMMON_ITEMS: tuple[tuple[str, str], ...] = (
    command_item("os-release", "cat /etc/os-release"),
    command_item("systemd-version", "systemctl --version | head -1"),
    command_item("hostname", "uname -n"),
    command_item("login-user", "printf '%s\\n' \"${SUDO_USER:-$(id -un)}\""),
    command_item("addresses", "ip -o addr show scope global | awk '{print $4}'"),
    command_item("listeners", "ss -ltn | tail -n +2"),
    command_item("hardnir-state", "for f in /var/lib/hardnir/runs/*/*/state; do [ -f \"$f\" ] && "
                 "printf '%s %s\\n' \"$f\" \"$(cat \"$f\")\"; done; true"),
)


def build_script(items: Iterable[tuple[str, str]]) -> str:
    """The probe script for these items (duplicates removed, common items first)."""
    unique: dict[str, str] = dict(COMMON_ITEMS)
    for name, command in items:
        unique.setdefault(name.replace("\n", "?"), command)
    lines = [_PRELUDE.replace("%(cap)d", str(ITEM_MAX_BYTES))]
    for name, command in unique.items():
        lines.append(f"_p {shlex.quote(name)} {shlex.quote(command)}")
    lines.append("exit 0")
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Item:
    """One probe item's output."""

    rc: int
    text: str


class ProbeParseError(ValueError):
    """The probe output is not what the probe prints (truncated, or not our probe)."""


def parse_output(output: str) -> dict[str, Item]:
    """Turn the framed probe output into items. Never raises on hostile content; bad frames are skipped."""
    items: dict[str, Item] = {}
    lines = output.split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if not line.startswith("@@ "):
            continue
        rc, _, name = line[3:].partition(" ")
        if not name or not rc.lstrip("-").isdigit() or len(rc) > 6:
            continue
        payload = lines[i] if i < len(lines) else ""
        i += 1
        try:
            raw = base64.b64decode(payload.strip(), validate=True)
        except (binascii.Error, ValueError):
            raw = b""
        items[name] = Item(rc=int(rc), text=raw.decode("utf-8", "replace"))
    if not items and output.strip():
        raise ProbeParseError("probe output has no items (not a hardnir probe, or truncated)")
    return items


def merge(*maps: Mapping[str, Item]) -> dict[str, Item]:
    merged: dict[str, Item] = {}
    for m in maps:
        merged.update(m)
    return merged
