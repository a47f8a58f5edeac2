"""One lab host: its overlay, its systemd-nspawn container, commands inside it, and its readiness.

The machine may run without systemd as PID 1 (no machined, no D-Bus), so containers are started with
`--register=no --keep-unit`; each launcher first moves itself into its own cgroup (hardnir-lab/<name>) in
every systemd-relevant hierarchy, so the containers' systemd instances never share a cgroup subtree.
On a machine booted with systemd, nspawn allocates its own scope instead.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from hardnir.lab.common import COMMAND_TIMEOUT_S, LabError, log, mountpoints, run, state_dir
from hardnir.lab.network import NETNS_DIR, netns_name

CGROUP_DIR = "hardnir-lab"
EXEC_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_launched: dict[int, subprocess.Popen[bytes]] = {}


@dataclass(frozen=True)
class HostPaths:
    """The per-host directory on the lab tmpfs."""

    base: Path

    @property
    def upper(self) -> Path:
        return self.base / "upper"

    @property
    def work(self) -> Path:
        return self.base / "work"

    @property
    def root(self) -> Path:
        """The merged overlay: the container's root directory."""
        return self.base / "root"

    @property
    def log(self) -> Path:
        return self.base / "console.log"

    @property
    def keys(self) -> Path:
        return self.base / "ssh"

    @property
    def tls(self) -> Path:
        return self.base / "tls"


def lab_fs() -> Path:
    """The tmpfs holding everything volatile of the running lab."""
    return state_dir() / "fs"


def host_paths(name: str) -> HostPaths:
    return HostPaths(lab_fs() / "hosts" / name)


# --- overlay --------------------------------------------------------------------------------------------------


def mount_overlay(lower: Path, paths: HostPaths) -> None:
    for d in (paths.upper, paths.work, paths.root):
        d.mkdir(parents=True, exist_ok=True)
    run(["mount", "-t", "overlay", "overlay", "-o",
         f"lowerdir={lower},upperdir={paths.upper},workdir={paths.work}", paths.root])


def unmount_overlay(paths: HostPaths) -> None:
    if str(paths.root) in mountpoints() and run(["umount", paths.root], check=False).returncode != 0:
        run(["umount", "-l", paths.root], check=False)


def wipe_overlay(paths: HostPaths) -> None:
    """Forget every change the host made (upper and work live on the lab tmpfs)."""
    if str(paths.root) in mountpoints():
        raise LabError(f"{paths.root} is still mounted")
    for d in (paths.upper, paths.work):
        if d.exists():
            run(["rm", "-rf", "--one-file-system", d])


# --- cgroups --------------------------------------------------------------------------------------------------


def systemd_is_init() -> bool:
    """True when the machine was booted with systemd (sd_booted())."""
    return Path("/run/systemd/system").is_dir()


def cgroup_roots() -> list[Path]:
    """Hierarchies in which each container gets its own subtree (none when systemd manages the machine)."""
    if systemd_is_init():
        return []
    base = Path("/sys/fs/cgroup")
    if (base / "cgroup.controllers").exists():
        return [base]
    return [p for p in (base / "systemd", base / "unified") if (p / "cgroup.procs").exists()]


def host_cgroups(name: str) -> list[Path]:
    return [root / CGROUP_DIR / name for root in cgroup_roots()]


def remove_cgroups(names: Iterable[str] | None = None, wait_s: float = 10.0) -> None:
    """rmdir the lab's cgroup subtrees, deepest first (all of hardnir-lab/ when `names` is None)."""
    tops = [root / CGROUP_DIR for root in cgroup_roots()] if names is None else [
        c for name in names for c in host_cgroups(name)]
    deadline = time.monotonic() + wait_s
    for top in tops:
        while top.is_dir():
            for dirpath, _dirs, _files in os.walk(top, topdown=False):
                with contextlib.suppress(OSError):
                    os.rmdir(dirpath)
            if not top.is_dir() or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        if top.is_dir():
            log.warning("could not remove cgroup %s (processes left in it?)", top)


# --- containers -----------------------------------------------------------------------------------------------


def start(name: str, paths: HostPaths) -> int:
    """Boot the host's container in the background; return the systemd-nspawn pid."""
    nspawn = [
        "systemd-nspawn", "--boot", "--register=no",
        f"--network-namespace-path={NETNS_DIR / netns_name(name)}",
        f"--directory={paths.root}", f"--machine={name}",
        "--link-journal=no", "--resolv-conf=off", "--timezone=off", "--console=passive",
    ]
    cgroups = host_cgroups(name)
    env = {"PATH": EXEC_PATH, "LANG": "C.UTF-8"}
    if cgroups:
        for cgroup in cgroups:
            cgroup.mkdir(parents=True, exist_ok=True)
        nspawn.insert(3, "--keep-unit")
        env["HN_CGROUPS"] = " ".join(str(c) for c in cgroups)
        argv = ["sh", "-c", 'for c in $HN_CGROUPS; do echo $$ > "$c/cgroup.procs" || exit 125; done; exec "$@"',
                "hardnir-lab-launch", *nspawn]
    else:
        argv = nspawn
    with open(paths.log, "ab") as out:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                env=env, start_new_session=True, close_fds=True)
    _launched[proc.pid] = proc
    return proc.pid


def nspawn_processes() -> dict[str, int]:
    """Running systemd-nspawn processes whose root directory is on the lab tmpfs, by host name."""
    prefix = str(lab_fs() / "hosts") + "/"
    found: dict[str, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if not argv or not argv[0].endswith(b"systemd-nspawn"):
            continue
        for arg in argv:
            if arg.startswith(b"--directory="):
                directory = arg[len(b"--directory="):].decode(errors="replace")
                if directory.startswith(prefix) and _alive(int(entry.name)):
                    found[directory[len(prefix):].split("/")[0]] = int(entry.name)
    return found


def container_init(nspawn_pid: int) -> int | None:
    """PID (in the machine's namespace) of the container's systemd: the child of systemd-nspawn."""
    children = Path(f"/proc/{nspawn_pid}/task/{nspawn_pid}/children")
    with contextlib.suppress(OSError):
        for pid in children.read_text().split():
            if _alive(int(pid)):
                return int(pid)
    return None


def init_pid(name: str) -> int:
    pid = nspawn_processes().get(name)
    init = container_init(pid) if pid else None
    if init is None:
        raise LabError(f"{name} is not running")
    return init


def stop(names: Iterable[str], timeout_s: float = 20.0) -> None:
    """Kill the containers of `names` (SIGKILL to their init ends the whole PID namespace) and wait."""
    running = nspawn_processes()
    targets = {name: running[name] for name in names if name in running}
    for pid in targets.values():
        init = container_init(pid)
        if init is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(init, signal.SIGKILL)
    deadline = time.monotonic() + timeout_s
    pending = set(targets.values())
    while pending:
        pending = {pid for pid in pending if _alive(pid)}
        if not pending:
            break
        if time.monotonic() > deadline:
            for pid in pending:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + 5
        time.sleep(0.05)
    # Launchers that outlived the process that started them are reaped by the machine's init; give it a
    # moment so that no <defunct> systemd-nspawn lingers in the process table after `down`.
    deadline = time.monotonic() + 5
    while any(Path(f"/proc/{pid}").exists() for pid in targets.values()) and time.monotonic() < deadline:
        time.sleep(0.05)
    for name in targets:
        remove_nspawn_leftovers(name)
    for proc in list(_launched.values()):  # reap launchers killed from outside (a test pulling the plug)
        if proc.poll() is not None:
            _launched.pop(proc.pid, None)


def remove_nspawn_leftovers(name: str) -> None:
    # nspawn refuses to rm -rf its propagation directory when /run is not a tmpfs.
    propagate = Path("/run/systemd/nspawn/propagate") / name
    if propagate.is_dir():
        run(["rm", "-rf", "--one-file-system", propagate], check=False)


def _alive(pid: int) -> bool:
    """True if `pid` exists and is not a zombie (reaping it when it is our child)."""
    proc = _launched.get(pid)
    if proc is not None and proc.poll() is not None:
        _launched.pop(pid, None)
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    state = stat.rsplit(")", 1)[-1].split()[0]
    if state in ("Z", "X"):
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        return False
    return True


def lab_exec(name: str, command: str, timeout: float = COMMAND_TIMEOUT_S) -> subprocess.CompletedProcess[str]:
    """Run `command` with /bin/sh as root inside host `name`, without SSH (nsenter into all its namespaces).

    The return code and output are the command's; subprocess.TimeoutExpired is raised after `timeout` s.
    The command text reaches the shell through the environment, so it never shows in the host's process
    list (a `pgrep -f PATTERN` run this way does not find its own shell).
    """
    pid = init_pid(name)
    argv = ["nsenter", f"--target={pid}", "--mount", "--uts", "--ipc", "--net", "--pid", "--cgroup",
            "--root", "--wd",
            "/usr/bin/env", "-i", f"PATH={EXEC_PATH}", "LANG=C.UTF-8", "HOME=/root", "USER=root", "LOGNAME=root",
            f"HARDNIR_LAB_CMD={command}",
            "/bin/sh", "-c", 'hardnir_lab_cmd=$HARDNIR_LAB_CMD; unset HARDNIR_LAB_CMD; eval "$hardnir_lab_cmd"']
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False,
                          stdin=subprocess.DEVNULL)


# --- readiness ------------------------------------------------------------------------------------------------


def ssh_banner(address: str, timeout: float = 2.0) -> bool:
    """True when <address>:22 accepts a TCP connection and greets with an SSH-2.0 banner."""
    try:
        with socket.create_connection((address, 22), timeout=timeout) as sock:
            sock.settimeout(timeout)
            data = b""
            while b"\n" not in data and len(data) < 512:
                chunk = sock.recv(512)
                if not chunk:
                    break
                data += chunk
    except OSError:
        return False
    return data.startswith(b"SSH-2.0-")


def wait_ready(name: str, address: str, launcher: int, deadline: float) -> None:
    """Wait for the SSH banner, then for systemd to finish booting (running or degraded).

    `launcher` is the pid start() returned; the host counts as crashed once that process is gone.
    """
    delay = 0.1
    while not ssh_banner(address, timeout=1.0):
        if not _alive(launcher):
            raise LabError(f"{name} stopped while booting: {_log_tail(name)}")
        if time.monotonic() > deadline:
            raise LabError(f"{name} ({address}) gave no SSH banner in time: {_log_tail(name)}")
        time.sleep(delay)
        delay = min(delay * 1.5, 0.5)
    remaining = max(deadline - time.monotonic(), 1.0)
    try:
        state = lab_exec(name, "systemctl is-system-running --wait", timeout=remaining).stdout.strip()
    except subprocess.TimeoutExpired:
        raise LabError(f"{name} did not finish booting in time") from None
    if state == "degraded":
        failed = lab_exec(name, "systemctl list-units --failed --plain --no-legend | cut -d' ' -f1").stdout
        log.warning("%s booted degraded; failed units: %s", name, " ".join(failed.split()))
    elif state != "running":
        raise LabError(f"{name} booted into state {state or 'unknown'!r}: {_log_tail(name)}")


def _log_tail(name: str) -> str:
    path = host_paths(name).log
    noise = ("Spawning container", "Press ^] three times", "Some capabilities will not be set")
    try:
        lines = [line.strip() for line in path.read_text(errors="replace").splitlines()
                 if line.strip() and not line.startswith(noise)]
    except OSError:
        return "no console log"
    return "console: " + (" | ".join(lines[-3:]) if lines else "(nothing yet)")
