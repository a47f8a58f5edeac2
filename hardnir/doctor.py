"""`hardnir doctor`: is each host ready for hardnir? One row per host and check, each failure with its fix.

Checks: login (connect, host key, authenticate), sudo (as the probe runs it: `sudo -n`, or with the password from
`sudo_password_env`), the commands the probe needs, the platform and its version (os-release), the clock skew.
What is observed on a host (`Observation`) is gathered in two short commands; the verdict (`judge`) is a pure
function of it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from hardnir import platforms
from hardnir.facts import parse_env_file
from hardnir.probe import REQUIRED_COMMANDS

# Every command the probe and the fixes run on a host, written once (the probe's PATH below).
PROBE_COMMANDS: Final = REQUIRED_COMMANDS
PROBE_PATH: Final = "/usr/sbin:/usr/bin:/sbin:/bin"
PROVIDED_BY: Final = {
    "sh": "a POSIX shell", "systemctl": "systemd", "ss": "iproute2", "ip": "iproute2", "curl": "curl",
    "base64": "coreutils", "timeout": "coreutils", "getent": "glibc", "setpriv": "util-linux", "tar": "tar",
    "find": "findutils", "stat": "coreutils", "gzip": "gzip", "mktemp": "coreutils", "id": "coreutils",
    "sudo": "sudo",
}

CHECKS: Final = ("login", "sudo", "commands", "platform", "clock")
CLOCK_WARN_S: Final = 5.0  # result timestamps drift from the operator's
CLOCK_FAIL_S: Final = 300.0  # certificates look not yet valid (or expired) to the host: the etcd TLS fixes fail
END_OF_LIFE: Final = {
    "coreos": ("end of life since 26 May 2020, no security updates",
               "migrate: Flatcar Container Linux (its continuation, same layout) or Fedora CoreOS (reprovision)"),
}
PLATFORM_NAMES: Final = platforms.NAMES

EXIT_OK, EXIT_NOT_READY, EXIT_UNREACHABLE = 0, 1, 4

# Run as the login user (no sudo): which probe commands are missing, the clock, and os-release.
INFO_SCRIPT: Final = (
    f"export LC_ALL=C PATH={PROBE_PATH}; "
    f"for c in {' '.join(PROBE_COMMANDS)}; do command -v \"$c\" >/dev/null 2>&1 || echo \"missing=$c\"; done; "
    "echo \"clock=$(date +%s.%N)\"; "
    "for f in /etc/os-release /usr/lib/os-release; do "
    "if [ -r \"$f\" ]; then while IFS= read -r l; do echo \"os:$l\"; done <\"$f\"; break; fi; done"
)


@dataclass(frozen=True)
class Observation:
    """What was seen on one host. None means "not looked at" (an earlier step failed)."""

    address: str = ""
    login_user: str = ""
    login_error: str = ""
    host_key: str = ""
    sudo_error: str | None = None  # "" when sudo worked
    sudo_password: bool = False  # sudo ran with the password from sudo_password_env
    read_error: str = ""  # the info script itself failed
    missing: tuple[str, ...] | None = None
    os_release: Mapping[str, str] | None = None
    skew_s: float | None = None
    skew_uncertainty_s: float = 0.0


@dataclass(frozen=True)
class DoctorRow:
    host: str
    check: str
    status: str  # ok | warn | fail | skipped
    detail: str
    fix: str = ""


def parse_info(stdout: str) -> tuple[tuple[str, ...], dict[str, str], float | None]:
    """INFO_SCRIPT's output -> (missing commands, os-release, remote clock)."""
    missing: list[str] = []
    release: list[str] = []
    clock: float | None = None
    for line in stdout.splitlines():
        if line.startswith("missing="):
            missing.append(line[len("missing="):])
        elif line.startswith("os:"):
            release.append(line[3:])
        elif line.startswith("clock="):
            value = line[len("clock="):]
            try:
                clock = float(value)
            except ValueError:  # a date without %N prints it literally
                clock = float(value.split(".")[0]) if value.split(".")[0].isdigit() else None
    return tuple(missing), parse_env_file("\n".join(release)), clock


platform_of = platforms.platform_of


# --- the verdict ------------------------------------------------------------------------------------------


def judge(host: str, seen: Observation, *, inventory_args: str = "-i INVENTORY_DIR",
          platforms: Collection[str] = ("coreos", "flatcar", "fcos")) -> list[DoctorRow]:
    """The five rows of one host (CHECKS order); later checks are `skipped` when login failed."""
    if seen.login_error:
        login = DoctorRow(host, "login", "fail", seen.login_error, _login_fix(seen.login_error, inventory_args))
        return [login, *(DoctorRow(host, c, "skipped", "needs a login") for c in CHECKS[1:])]
    user = seen.login_user
    rows = [DoctorRow(host, "login", "ok", f"{user}@{seen.address}, host key {seen.host_key}"), _sudo(host, seen)]
    if seen.read_error:
        fix = ("install coreutils' timeout on the host" if "timeout" in seen.read_error
               else "check the login shell of the user and the host's logs")
        rows.append(DoctorRow(host, "commands", "fail", f"cannot run commands: {seen.read_error}", fix))
        rows += [DoctorRow(host, c, "skipped", "cannot run commands") for c in CHECKS[3:]]
        return rows
    rows.append(_commands(host, seen.missing or ()))
    rows.append(_platform(host, seen.os_release or {}, platforms))
    rows.append(_clock(host, seen.skew_s, seen.skew_uncertainty_s))
    return rows


def _login_fix(error: str, inventory_args: str) -> str:
    """The fix for a failed login; `inventory_args` name the inventory as the command line does (`-i DIR`)."""
    lowered = error.lower()
    if "unknown host key" in lowered:
        return f"record the host key: hardnir keys scan {inventory_args} --accept (or --expect FILE)"
    if "changed" in lowered or "does not match" in lowered:
        return f"the host key changed: verify it out of band (hardnir keys check {inventory_args}) before trusting it"
    if "authentication failed" in lowered:
        return ("put your public key in the user's ~/.ssh/authorized_keys (ssh-copy-id), or set key_filename, "
                "username or password in the inventory")
    if "resolve" in lowered:
        return "fix the hostname in hosts.yaml (it does not resolve)"
    return "check the hostname and port in hosts.yaml, that sshd runs on the host, and that the network lets you in"


def _sudo(host: str, seen: Observation) -> DoctorRow:
    user = seen.login_user
    if user == "root":
        return DoctorRow(host, "sudo", "ok", "logged in as root: no sudo needed")
    if not seen.sudo_error:
        how = "sudo with the password from sudo_password_env" if seen.sudo_password else "sudo -n"
        return DoctorRow(host, "sudo", "ok", f"{how} works for {user}")
    error = seen.sudo_error
    if seen.sudo_password:
        fix = f"check the password in sudo_password_env, and that {user} may run commands as root with sudo"
    elif "password is required" in error or "terminal is required" in error:
        fix = (f"let {user} sudo without a password (/etc/sudoers.d/hardnir: '{user} ALL=(ALL) NOPASSWD: ALL'), "
               "or set sudo_password_env in the inventory")
    else:
        fix = f"give {user} sudo rights on the host, or log in as a user that has them"
    return DoctorRow(host, "sudo", "fail", f"sudo as {user} fails: {error}", fix)


def _commands(host: str, missing: Sequence[str]) -> DoctorRow:
    if not missing:
        return DoctorRow(host, "commands", "ok", f"all {len(PROBE_COMMANDS)} probe commands present")
    packages = ", ".join(dict.fromkeys(PROVIDED_BY.get(c, c) for c in missing))
    return DoctorRow(host, "commands", "fail", f"missing on PATH {PROBE_PATH}: {' '.join(missing)}",
                     f"install {packages} on the host (or use an image that has them)")


def _platform(host: str, release: Mapping[str, str], platforms: Collection[str]) -> DoctorRow:
    if not release:
        return DoctorRow(host, "platform", "warn", "no /etc/os-release: platform unknown",
                         "hardnir targets CoreOS Container Linux, Flatcar and Fedora CoreOS")
    platform = platform_of(release)
    version = release.get("VERSION_ID", "?")
    name = f"{PLATFORM_NAMES.get(platform, release.get('NAME', platform))} {version} (ID={release.get('ID', '')})"
    if platform in END_OF_LIFE:
        note, fix = END_OF_LIFE[platform]
        return DoctorRow(host, "platform", "warn", f"{name}: {note}", fix)
    if platform not in platforms:
        return DoctorRow(host, "platform", "warn", f"{name}: not a CoreOS-family platform",
                         "the controls were written for CoreOS Container Linux, Flatcar and Fedora CoreOS: "
                         "read results from other platforms with care")
    return DoctorRow(host, "platform", "ok", name)


def _clock(host: str, skew: float | None, uncertainty: float) -> DoctorRow:
    if skew is None:
        return DoctorRow(host, "clock", "warn", "could not read the host's clock (date)", "check that date works")
    detail = f"skew {skew:+.1f} s (±{uncertainty:.1f} s)"
    off = abs(skew) - uncertainty
    fix = "enable time synchronisation on the host (systemd-timesyncd or chronyd) or on this machine"
    if off > CLOCK_FAIL_S:
        return DoctorRow(host, "clock", "fail", f"{detail}: certificates and run timestamps will be wrong", fix)
    if off > CLOCK_WARN_S:
        return DoctorRow(host, "clock", "warn", f"{detail}: run timestamps will be off", fix)
    return DoctorRow(host, "clock", "ok", detail)


def host_ready(rows: Sequence[DoctorRow]) -> bool:
    return all(r.status != "fail" for r in rows)


def exit_code(rows: Sequence[DoctorRow]) -> int:
    """0 every host ready; 4 a host could not be logged into; 1 another check failed."""
    if any(r.check == "login" and r.status == "fail" for r in rows):
        return EXIT_UNREACHABLE
    return EXIT_OK if host_ready(rows) else EXIT_NOT_READY


# --- gathering --------------------------------------------------------------------------------------------


def observe(conn: Any, address: str) -> Observation:
    """Sudo check, then the info script, on an open `hardnir` connection."""
    sudo_error: str | None = ""
    if conn.login_user != "root":
        result = conn.run("true", sudo=True, timeout=conn.connect_timeout)
        if not result.ok:
            sudo_error = _first_line(result.stderr) or f"exit {result.exit_status}"
    started = time.time()
    result = conn.run(INFO_SCRIPT, timeout=conn.connect_timeout)
    ended = time.time()
    base = {"address": address, "login_user": conn.login_user, "host_key": conn.host_key_fingerprint,
            "sudo_error": sudo_error, "sudo_password": conn.sudo_password is not None}
    if result.exit_status != 0:
        return Observation(**base, read_error=_first_line(result.stderr) or f"exit {result.exit_status}")
    missing, release, clock = parse_info(result.stdout)
    skew = None if clock is None else clock - (started + ended) / 2
    return Observation(**base, missing=missing, os_release=release, skew_s=skew,
                       skew_uncertainty_s=(ended - started) / 2)


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "")[:200]


def run_doctor(inventory: str | Path | None = None, *, config: str | Path | None = None, hosts: str | None = None,
               workers: int | None = None, progress: Callable[[int], Any] | None = None) -> list[DoctorRow]:
    """Every selected host's rows, in inventory order (Nornir's runner does the hosts in parallel); the hosts
    come from an inventory folder or a Nornir config file."""
    from nornir.core.task import Result, Task

    from hardnir.control import catalogue
    from hardnir.inventory import as_list, filter_hosts
    from hardnir.inventory_source import open_inventory
    from hardnir.ssh import CONNECTION_NAME

    platforms = {p for control in catalogue().values() for p in control.meta.platforms}
    opened = open_inventory(inventory, config=config, workers=workers)
    nr = filter_hosts(opened.nr, as_list(hosts), None)
    bar = progress(len(nr.inventory.hosts)) if progress else None

    def check(task: Task) -> Result:
        address = str(task.host.hostname)
        try:
            conn = task.host.get_connection(CONNECTION_NAME, task.nornir.config)
        except Exception as exc:  # SSHError and whatever a plugin raises: the message is the row
            seen = Observation(address=address, login_error=str(exc).splitlines()[0] if str(exc) else repr(exc))
        else:
            try:
                seen = observe(conn, address)
            except Exception as exc:  # the connection dropped half way
                seen = Observation(address=address, login_error=f"connection lost: {exc}".splitlines()[0])
        rows = judge(task.host.name, seen, inventory_args=opened.args, platforms=platforms)
        if bar is not None:
            bar.update(task.host.name, [{"status": "error" if seen.login_error else
                                         "pass" if host_ready(rows) else "fail"}])
        return Result(host=task.host, result=rows)

    try:
        results = nr.run(task=check)
    finally:
        nr.close_connections(on_good=True, on_failed=True)
        if bar is not None:
            bar.close()
    rows: list[DoctorRow] = []
    for name in nr.inventory.hosts:
        if results[name].failed:
            error = f"internal error: {results[name].exception}"
            rows += judge(name, Observation(login_error=error), inventory_args=opened.args, platforms=platforms)
        else:
            rows += results[name][0].result
    return rows


def render(rows: Sequence[DoctorRow]) -> str:
    from hardnir.report import format_table, grouped_fixes

    lines = [format_table(["host", "check", "status", "detail"],
                          [[r.host, r.check, r.status, r.detail] for r in rows], [False] * 4)]
    lines += [""] if any(r.fix and r.status in ("fail", "warn") for r in rows) else []
    lines += grouped_fixes([(f"{r.check} {r.status}", r.host, r.fix) for r in rows
                            if r.fix and r.status in ("fail", "warn")])
    not_ready = {r.host for r in rows if r.status == "fail"}
    total = len(dict.fromkeys(r.host for r in rows))
    lines.append(f"ready: {total - len(not_ready)} of {total} hosts")
    return "\n".join(lines)
