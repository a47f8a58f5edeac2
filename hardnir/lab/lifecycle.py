"""Bring the lab up, tear it down, report on it, and reset single hosts."""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from hardnir.lab import hosts as hostmod
from hardnir.lab import network
from hardnir.lab.certs import HostCerts, make_ca, make_host_certs
from hardnir.lab.common import LabError, cache_dir, log, mountpoints, require_root, require_tools, run, state_dir
from hardnir.lab.hosts import HostPaths, host_paths, lab_fs
from hardnir.lab.image import Account, accounts, ensure_image
from hardnir.lab.inventory import write_inventory
from hardnir.lab.model import HostRecord, HostStatus, LabInfo, LabState, load_state, save_state
from hardnir.lab.profiles import LAB_PLATFORMS, SeedInput, draw_profiles, seed_host

T = TypeVar("T")
R = TypeVar("R")

BOOT_TIMEOUT_S = float(os.environ.get("HARDNIR_LAB_BOOT_TIMEOUT", "180"))
INOTIFY_LIMITS = {"max_user_instances": 8192, "max_user_watches": 524288}
_lock_depth = 0


def up(
    hosts: int = 10,
    seed: int = 1,
    inventory_dir: Path = Path("inventory/lab"),
    dead_hosts: int = 0,
    platform: str = "mixed",
) -> LabInfo:
    """Boot `hosts` lab hosts (building the image first if needed), write the inventory, return the lab.

    `platform` (coreos, flatcar, fcos or mixed) says which platform the hosts imitate (`hardnir.lab.profiles`).

    A lab that is already up is torn down first. On failure everything created so far is removed again
    (console logs of the hosts are kept in <cache dir>/last-failure/).
    """
    require_root()
    require_tools()
    if not 1 <= hosts <= network.MAX_HOSTS:
        raise LabError(f"--hosts must be between 1 and {network.MAX_HOSTS}")
    if not 0 <= dead_hosts <= 254:
        raise LabError("--dead must be between 0 and 254")
    if platform not in LAB_PLATFORMS:
        raise LabError(f"--platform must be one of {', '.join(LAB_PLATFORMS)}")
    inventory_dir = inventory_dir.expanduser().absolute()
    with _locked():
        if load_state() is not None or _leftovers():
            log.info("tearing down the lab that is up")
            _down()
        started = time.monotonic()
        rootfs = ensure_image()
        lab_key = _ensure_lab_key()
        _raise_inotify_limits()
        width = max(2, len(str(hosts)))
        state = LabState(
            seed=seed,
            platform=platform,
            rootfs=str(rootfs),
            inventory_dir=str(inventory_dir),
            key_file=str(inventory_dir / "id_ed25519"),
            known_hosts=str(inventory_dir / "known_hosts"),
            ca_file=str(lab_fs() / "pki" / "ca.pem"),
            created_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            hosts=[
                HostRecord(f"lab-{i:0{width}d}", network.host_address(i), profile, uuid.uuid4().hex)
                for i, profile in enumerate(draw_profiles(hosts, seed, platform), start=1)
            ],
            dead=[HostRecord(f"dead-{i:02d}", network.dead_address(i), {"dead": "true"})
                  for i in range(1, dead_hosts + 1)],
        )
        try:
            lab_info = _bring_up(state, rootfs, lab_key, started)
        except BaseException as exc:
            logs = _keep_failure_logs(state)
            log.info("up failed; removing what was created")
            _down()
            if isinstance(exc, LabError) and logs is not None:
                raise LabError(f"{exc} (console logs: {logs})") from exc
            raise
    return lab_info


def _bring_up(state: LabState, rootfs: Path, lab_key: Path, started: float) -> LabInfo:
    state_dir().mkdir(parents=True, exist_ok=True)
    save_state(state)
    lab_fs().mkdir(exist_ok=True)
    if str(lab_fs()) not in mountpoints():
        run(["mount", "-t", "tmpfs", "-o", "mode=0755,size=80%", "hardnir-lab", lab_fs()])
    users = accounts(rootfs)
    missing = {"core", "ops", "etcd"} - set(users)
    if missing:
        raise LabError(f"image {rootfs} lacks users {', '.join(sorted(missing))}; delete it to rebuild")
    authorized_key = Path(f"{lab_key}.pub").read_text()

    log.info("preparing %d hosts (host keys, certificates)", len(state.hosts))
    make_ca(lab_fs() / "pki")
    _parallel(_prepare_keys, state.hosts)

    log.info("starting %d containers", len(state.hosts))
    network.ensure_bridge()
    network.add_host(state.hosts[0].name, state.hosts[0].address)  # the first `ip netns add` sets up /run/netns

    def launch(record: HostRecord) -> int:
        if record is not state.hosts[0]:
            network.add_host(record.name, record.address)
        paths = host_paths(record.name)
        hostmod.mount_overlay(rootfs, paths)
        seed_host(paths.root, _seed_input(record, paths, authorized_key, users))
        return hostmod.start(record.name, paths)

    boot_started = time.monotonic()
    launchers = _parallel(launch, state.hosts)
    deadline = time.monotonic() + BOOT_TIMEOUT_S
    _parallel(lambda rp: hostmod.wait_ready(rp[0].name, rp[0].address, rp[1], deadline),
              list(zip(state.hosts, launchers, strict=True)), workers=128)
    state.boot_seconds = round(time.monotonic() - boot_started, 1)
    state.phase = "up"
    save_state(state)

    lab_info = state.info()
    public_keys = {r.address: (host_paths(r.name).keys / "ssh_host_ed25519_key.pub").read_text()
                   for r in state.hosts}
    write_inventory(lab_info.inventory_dir, lab_info.hosts, lab_info.dead_hosts, lab_key, public_keys, {
        "seed": state.seed, "created_at": state.created_at, "image": state.rootfs,
        "ca_file": state.ca_file, "boot_seconds": state.boot_seconds,
    })
    log.info("%d hosts up in %.1f s (boot %.1f s); inventory: %s",
             len(state.hosts), time.monotonic() - started, state.boot_seconds, lab_info.inventory_dir)
    return lab_info


def down() -> None:
    """Remove the lab's containers, overlays, tmpfs, network namespaces, veths, bridge and cgroups.

    Idempotent, and thorough after a failed `up`: besides the state file it finds the lab's pieces by their
    names (systemd-nspawn processes rooted on the lab tmpfs, mounts under the state dir, hn-* links and
    namespaces, the hardnir-lab cgroup subtrees).
    """
    require_root()
    with _locked():
        _down()


def _down() -> None:
    state = load_state()
    names = set(hostmod.nspawn_processes())
    if state is not None:
        names |= {h.name for h in state.hosts}
    hosts_dir = lab_fs() / "hosts"
    if hosts_dir.is_dir():
        names |= {p.name for p in hosts_dir.iterdir()}
    hostmod.stop(sorted(names))
    for name in names:
        hostmod.remove_nspawn_leftovers(name)
    prefix = str(state_dir()) + "/"
    for point in reversed(mountpoints()):
        if point.startswith(prefix) and run(["umount", point], check=False).returncode != 0:
            run(["umount", "-l", point], check=False)
    hostmod.remove_cgroups()
    network.remove_all()
    if state_dir().is_dir():
        if any(p.startswith(prefix) or p == str(state_dir()) for p in mountpoints()):
            raise LabError(f"something is still mounted under {state_dir()}; not removing it")
        run(["rm", "-rf", "--one-file-system", state_dir()])


def status() -> list[HostStatus]:
    """One row per lab host: is its container running, does its sshd answer with a banner."""
    state = load_state()
    if state is None:
        return []
    running = hostmod.nspawn_processes()

    def row(record: HostRecord) -> HostStatus:
        alive = record.name in running and hostmod.container_init(running[record.name]) is not None
        reachable = alive and hostmod.ssh_banner(record.address, timeout=2.0)
        return HostStatus(record.name, record.address, alive, reachable)

    return _parallel(row, state.hosts, workers=64)


def info() -> LabInfo | None:
    """The lab that is up (as `up` returned it), or None."""
    state = load_state()
    return state.info() if state is not None and state.phase == "up" else None


def reset_host(name: str) -> None:
    """Stop host `name`, restore its initial seeded filesystem, boot it again and wait for its sshd."""
    require_root()
    with _locked():
        state = load_state()
        if state is None:
            raise LabError("no lab is up")
        record = state.host(name)
        paths = host_paths(name)
        hostmod.stop([name])
        hostmod.remove_nspawn_leftovers(name)
        hostmod.unmount_overlay(paths)
        hostmod.wipe_overlay(paths)
        hostmod.remove_cgroups([name])
        rootfs = Path(state.rootfs)
        hostmod.mount_overlay(rootfs, paths)
        authorized_key = Path(f"{_lab_key_path()}.pub").read_text()
        seed_host(paths.root, _seed_input(record, paths, authorized_key, accounts(rootfs)))
        with open(paths.log, "a") as out:
            out.write(f"\n---- hardnir lab: reset {name} at {time.strftime('%H:%M:%S')} ----\n")
        launcher = hostmod.start(name, paths)
        hostmod.wait_ready(name, record.address, launcher, time.monotonic() + BOOT_TIMEOUT_S)


# --- helpers --------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _locked() -> Iterator[None]:
    """Serialise up/down/reset between processes (re-entrant within one)."""
    global _lock_depth
    if _lock_depth:
        _lock_depth += 1
        try:
            yield
        finally:
            _lock_depth -= 1
        return
    cache_dir().mkdir(parents=True, exist_ok=True)
    with open(cache_dir() / "lab.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        _lock_depth = 1
        try:
            yield
        finally:
            _lock_depth = 0
            fcntl.flock(lock, fcntl.LOCK_UN)


def _leftovers() -> bool:
    prefix = network.PREFIX
    return (
        bool(hostmod.nspawn_processes())
        or state_dir().exists()
        or any(ns.startswith(prefix) for ns in network.netns_list())
        or any(name.startswith(prefix) for name in network.links())
    )


def _lab_key_path() -> Path:
    return cache_dir() / "lab-key" / "id_ed25519"


def _ensure_lab_key() -> Path:
    """The lab's SSH key pair, kept in the cache so it is stable across labs."""
    key = _lab_key_path()
    if not key.exists() or not Path(f"{key}.pub").exists():
        key.parent.mkdir(parents=True, exist_ok=True)
        key.parent.chmod(0o700)
        key.unlink(missing_ok=True)
        Path(f"{key}.pub").unlink(missing_ok=True)
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "hardnir-lab", "-f", key])
    return key


def _raise_inotify_limits() -> None:
    # Every container's systemd holds inotify instances; the default of 128 per user stops at a few hosts.
    for knob, wanted in INOTIFY_LIMITS.items():
        path = Path("/proc/sys/fs/inotify") / knob
        if int(path.read_text()) < wanted:
            path.write_text(f"{wanted}\n")


def _prepare_keys(record: HostRecord) -> None:
    paths = host_paths(record.name)
    paths.keys.mkdir(parents=True, exist_ok=True)
    key = paths.keys / "ssh_host_ed25519_key"
    run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"root@{record.name}", "-f", key])
    record.host_key_fingerprint = fingerprint(Path(f"{key}.pub").read_text())
    make_host_certs(lab_fs() / "pki", paths.tls, record.name, record.address)


def _host_certs(paths: HostPaths) -> HostCerts:
    d = paths.tls
    return HostCerts(d / "ca.pem", d / "server.pem", d / "server-key.pem", d / "client.pem", d / "client-key.pem")


def _seed_input(record: HostRecord, paths: HostPaths, authorized_key: str,
                users: Mapping[str, Account]) -> SeedInput:
    return SeedInput(
        name=record.name,
        address=record.address,
        profile=record.profile,
        machine_id=record.machine_id,
        host_key=paths.keys / "ssh_host_ed25519_key",
        certs=_host_certs(paths),
        authorized_key=authorized_key,
        accounts=users,
    )


def fingerprint(public_key: str) -> str:
    """OpenSSH's SHA256 fingerprint of a public key line ("SHA256:" + unpadded base64 of the blob's digest)."""
    blob = base64.b64decode(public_key.split()[1])
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def _keep_failure_logs(state: LabState) -> Path | None:
    """Copy the hosts' console logs out of the tmpfs before it goes; return where they are."""
    target = cache_dir() / "last-failure"
    try:
        if target.exists():
            shutil.rmtree(target)
        copied = 0
        for record in state.hosts:
            log_file = host_paths(record.name).log
            if log_file.exists():
                target.mkdir(parents=True, exist_ok=True)
                shutil.copy(log_file, target / f"{record.name}.log")
                copied += 1
    except OSError:
        return None
    return target if copied else None


def _parallel(fn: Callable[[T], R], items: Sequence[T], workers: int = 16) -> list[R]:
    """Map `fn` over `items` in threads; re-raise the first failure after all finished."""
    if not items:
        return []
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(items)))) as pool:
        futures = [pool.submit(fn, item) for item in items]
    for future in futures:
        error = future.exception()
        if error is not None:
            raise error
    return [f.result() for f in futures]
