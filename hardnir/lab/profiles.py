"""Seeded host states: which state each lab host starts in, and the files that put it there.

A profile is a flat dict, one value per dimension. Host 1 is always all-vanilla (every control fails). Other
hosts draw each dimension independently from a generator seeded by (seed, host index), so a host's state does
not depend on the lab size; then, when the lab is big enough, missing values are handed to hosts whose value
is not unique, so a demo fleet shows every state. States are applied by writing into the host's overlay
before it boots (no SSH). No state touches core's sudo rule: the lab inventory logs in as core.

Platforms (`os`): every host boots the same Container Linux look-alike image; a Flatcar or Fedora CoreOS host
gets its differences at seed time (`_flatcar`, `_fcos`, the files in `hardnir/lab/platforms/`; sources in
`hardnir/lab/platforms/README.md`). `--platform coreos|flatcar|fcos` gives every host that platform; `mixed`
draws it, and hosts 2 and 3 are the all-vanilla Flatcar and Fedora CoreOS hosts. A dimension a platform does not
have is `missing` there (no fleet on Flatcar or FCOS, no etcd on FCOS, Zincati only on FCOS).
"""

from __future__ import annotations

import os
import random
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from hardnir.lab.certs import HostCerts
from hardnir.lab.common import write_file
from hardnir.lab.image import Account

PLATFORMS: tuple[str, ...] = ("coreos", "flatcar", "fcos")
LAB_PLATFORMS: tuple[str, ...] = (*PLATFORMS, "mixed")
DIMENSIONS: dict[str, tuple[str, ...]] = {
    "os": PLATFORMS,
    "sshd": ("vanilla", "restricted"),
    "etcd": ("vanilla", "tls", "missing"),
    "fleet": ("vanilla", "root-only", "missing"),
    "groups": ("vanilla", "etc-removed"),
    "docker": ("vanilla", "missing"),
    "zincati": ("vanilla", "tls", "immediate", "missing"),  # FleetLock over http, over https, default strategy
}
# How often each value is drawn (same order as DIMENSIONS): mostly default hosts, some hardened, few missing.
WEIGHTS: dict[str, tuple[float, ...]] = {
    "os": (0.5, 0.25, 0.25),
    "sshd": (0.6, 0.4),
    "etcd": (0.45, 0.35, 0.2),
    "fleet": (0.45, 0.35, 0.2),
    "groups": (0.6, 0.4),
    "docker": (0.75, 0.25),
    "zincati": (0.5, 0.3, 0.2, 0.0),
}
VANILLA: dict[str, str] = {dim: values[0] for dim, values in DIMENSIONS.items()}
PLATFORM_FILES = Path(__file__).resolve().parent / "platforms"
ETCD_UNIT = {"coreos": "etcd2.service", "flatcar": "etcd-member.service"}

SYSTEM = "etc/systemd/system"
VENDOR = "usr/lib/systemd/system"
TLS_DIR = "/etc/ssl/etcd"
# Where the FCOS hosts' FleetLock server would be (nothing answers there: Zincati's stand-in does not call it).
FLEETLOCK_HOST = "fleetlock.lab.internal"
FLEETLOCK_PORT = 3333

FLATCAR_OS_RELEASE = """NAME="Flatcar Container Linux by Kinvolk"
ID=flatcar
ID_LIKE=coreos
VERSION=3510.2.1
VERSION_ID=3510.2.1
BUILD_ID=2023-04-26-1637
SYSEXT_LEVEL=1.0
PRETTY_NAME="Flatcar Container Linux by Kinvolk 3510.2.1 (Oklo)"
ANSI_COLOR="38;5;75"
HOME_URL="https://flatcar.org/"
BUG_REPORT_URL="https://issues.flatcar.org"
FLATCAR_BOARD="amd64-usr"
CPE_NAME="cpe:2.3:o:flatcar-linux:flatcar_linux:3510.2.1:*:*:*:*:*:*:*"
"""


def draw_profiles(count: int, seed: int, platform: str = "mixed") -> list[dict[str, str]]:
    """Profiles of hosts 1..count for `seed` on `platform` (one of LAB_PLATFORMS); deterministic."""
    if platform not in LAB_PLATFORMS:
        raise ValueError(f"unknown platform {platform!r} (one of {', '.join(LAB_PLATFORMS)})")
    oses = PLATFORMS if platform == "mixed" else (platform,)
    profiles = [dict(VANILLA, os=oses[0])]
    for index in range(2, count + 1):
        rng = random.Random(f"hardnir-lab:{seed}:{index}")
        profiles.append({dim: rng.choices(values, WEIGHTS[dim])[0] for dim, values in DIMENSIONS.items()})
        if platform != "mixed":
            profiles[-1]["os"] = platform
    if platform == "mixed":  # hosts 2 and 3: the all-vanilla Flatcar and Fedora CoreOS hosts
        for index, os_name in enumerate(PLATFORMS[1:], start=1):
            if index < count:
                profiles[index] = dict(VANILLA, os=os_name)
    for profile in profiles:
        _normalise(profile)
    dimensions = dict(DIMENSIONS, os=oses)
    _cover(profiles, random.Random(f"hardnir-lab:{seed}:cover:{count}"), dimensions, fixed=len(oses))
    return profiles


def _normalise(profile: dict[str, str]) -> None:
    """Drop what the host's platform or state does not have."""
    # Without etcd there is no fleet or locksmithd either (the "missing" etcd state removes all three).
    if profile["os"] == "fcos":  # FCOS ships no etcd, fleet or locksmith (fedora-coreos-docs migrate-cl.adoc)
        profile["etcd"] = "missing"
    if profile["etcd"] == "missing" or profile["os"] != "coreos":  # fleet: Container Linux only
        profile["fleet"] = "missing"
    if profile["os"] != "fcos":  # Zincati: Fedora CoreOS only
        profile["zincati"] = "missing"
    elif profile["zincati"] == "missing":
        profile["zincati"] = "immediate"


def _cover(profiles: list[dict[str, str]], rng: random.Random, dimensions: Mapping[str, tuple[str, ...]],
           fixed: int = 1) -> None:
    """Hand every value of every dimension to some host (not the `fixed` first ones) whose value is not unique,
    where the host's platform allows that value."""
    others = range(fixed, len(profiles))
    for dim, values in dimensions.items():
        for value in values:
            counts = Counter(profiles[i][dim] for i in others)
            if counts[value]:
                continue
            candidates = [i for i in others if counts[profiles[i][dim]] > 1 and _allows(profiles[i], dim, value)]
            if candidates:
                chosen = profiles[rng.choice(candidates)]
                chosen[dim] = value
                _normalise(chosen)


def _allows(profile: Mapping[str, str], dim: str, value: str) -> bool:
    trial = dict(profile, **{dim: value})
    _normalise(trial)
    return trial[dim] == value and all(trial[d] == profile[d] for d in profile if d not in (dim, "fleet", "zincati"))


@dataclass(frozen=True)
class SeedInput:
    """Everything that makes one host's initial filesystem state."""

    name: str
    address: str
    profile: Mapping[str, str]
    machine_id: str
    host_key: Path  # private key; the public key is host_key + ".pub"
    certs: HostCerts
    authorized_key: str
    accounts: Mapping[str, Account]


def seed_host(root: Path, seed: SeedInput) -> None:
    """Write the host's files into its (mounted, not yet booted) overlay `root`."""
    profile = seed.profile
    platform = profile.get("os", "coreos")
    _common(root, seed)
    if platform == "flatcar":
        _flatcar(root)
    elif platform == "fcos":
        _fcos(root, seed)
    if profile["sshd"] == "restricted":
        if platform == "fcos":  # the site's own sshd_config.d drop-in, sorting before FCOS's 40-disable-passwords
            write_file(root / "etc/ssh/sshd_config.d/10-site-listen.conf", f"ListenAddress {seed.address}:22\n")
        else:
            write_file(root / SYSTEM / "sshd.socket.d/10-sshd-listen.conf",
                       f"[Socket]\nListenStream=\nListenStream={seed.address}:22\nFreeBind=true\n")
    etcd_unit = ETCD_UNIT.get(platform, "etcd2.service")
    if profile["etcd"] == "missing":
        _remove(root, f"{VENDOR}/{etcd_unit}", f"{SYSTEM}/multi-user.target.wants/{etcd_unit}",
                f"{VENDOR}/locksmithd.service", f"{VENDOR}/multi-user.target.wants/locksmithd.service",
                "usr/lib/locksmith/locksmithd")
    else:
        _cloudinit(root, seed, etcd_unit)
    if profile["etcd"] == "tls":
        write_file(root / SYSTEM / f"{etcd_unit}.d/40-site-tls.conf", _environment({
            "ETCD_CERT_FILE": f"{TLS_DIR}/server.pem",
            "ETCD_KEY_FILE": f"{TLS_DIR}/server-key.pem",
            "ETCD_TRUSTED_CA_FILE": f"{TLS_DIR}/ca.pem",
            "ETCD_CLIENT_CERT_AUTH": "true",
            "ETCD_LISTEN_CLIENT_URLS": "https://0.0.0.0:2379",
            "ETCD_ADVERTISE_CLIENT_URLS": f"https://{seed.address}:2379",
        }))
    if profile["fleet"] == "missing":
        _remove(root, f"{VENDOR}/fleet.socket", f"{VENDOR}/fleet.service",
                f"{SYSTEM}/multi-user.target.wants/fleet.service", "usr/bin/fleetd")
    elif profile["fleet"] == "root-only":
        write_file(root / SYSTEM / "fleet.socket.d/10-root-only.conf",
                   "[Socket]\nSocketMode=0600\nSocketUser=root\nSocketGroup=root\n")
    if profile["docker"] == "missing":
        _remove(root, f"{VENDOR}/docker.socket", f"{VENDOR}/docker.service",
                f"{VENDOR}/sockets.target.wants/docker.socket", "usr/bin/dockerd")
    if profile["groups"] == "etc-removed":
        # On FCOS the sudo group is core's (and the lab inventory's) passwordless sudo: only wheel goes.
        dropped = ("wheel",) if platform == "fcos" else ("wheel", "docker", "rkt")
        for db in ("etc/group", "etc/gshadow"):
            _drop_member(root / db, "core", dropped)
    zincati = profile.get("zincati", "missing")
    if zincati in ("vanilla", "tls"):
        scheme = "https" if zincati == "tls" else "http"
        write_file(root / "etc/zincati/config.d/55-updates-strategy.toml",
                   f'[updates]\nstrategy = "fleet_lock"\n\n[updates.fleet_lock]\n'
                   f'base_url = "{scheme}://{FLEETLOCK_HOST}:{FLEETLOCK_PORT}/"\n')


def _copy_platform_files(root: Path, platform: str) -> None:
    """Copy hardnir/lab/platforms/<platform>/ over the host's overlay (modes: 0755 if executable, else 0644)."""
    base = PLATFORM_FILES / platform
    for path in sorted(base.rglob("*")):
        if path.is_file():
            mode = 0o755 if os.access(path, os.X_OK) else 0o644
            if path.parent.name == "sudoers.d" or path.name == "sudoers":
                mode = 0o440
            write_file(root / path.relative_to(base), path.read_bytes(), mode=mode)


def _flatcar(root: Path) -> None:
    """Flatcar: os-release, etcd-member instead of etcd2, no fleet or rkt, flatcar/update.conf, and the
    /etc/ssh/sshd_config symlink into /usr (sources: hardnir/lab/platforms/README.md)."""
    write_file(root / "etc/os-release", FLATCAR_OS_RELEASE)
    write_file(root / "usr/lib/os-release", FLATCAR_OS_RELEASE)
    _copy_platform_files(root, "flatcar")
    _remove(root, f"{VENDOR}/etcd2.service", f"{SYSTEM}/multi-user.target.wants/etcd2.service",
            "usr/lib/sysusers.d/rkt.conf", "etc/coreos/update.conf", "usr/share/coreos/update.conf")
    _link(root, f"{SYSTEM}/multi-user.target.wants/etcd-member.service", f"/{VENDOR}/etcd-member.service")
    for rel in ("etc/coreos", "usr/share/coreos"):
        if (root / rel).is_dir() and not any((root / rel).iterdir()):
            (root / rel).rmdir()
    _link(root, "usr/share/coreos", "flatcar")
    for db in ("etc/group", "etc/gshadow"):
        _drop_groups(root / db, ("rkt", "rkt-admin"))
    config = root / "etc/ssh/sshd_config"
    write_file(root / "usr/share/ssh/sshd_config", config.read_bytes(), mode=0o600)
    _link(root, "etc/ssh/sshd_config", "/usr/share/ssh/sshd_config")


def _fcos(root: Path, seed: SeedInput) -> None:
    """Fedora CoreOS: os-release, sshd.service at boot (no socket activation), FCOS's sshd_config.d files,
    sudo through the sudo group (coreos-sudo-group), core's groups in /etc/group only, no rkt, Zincati."""
    _copy_platform_files(root, "fcos")
    write_file(root / "usr/lib/os-release", (root / "etc/os-release").read_bytes())
    _remove(root, f"{VENDOR}/sockets.target.wants/sshd.socket", f"{VENDOR}/sshd.socket.d/no-trigger-limit-burst.conf",
            "usr/lib/sysusers.d/rkt.conf", "etc/sudo.conf", "usr/share/baselayout/group",
            "usr/share/baselayout/sudoers", "usr/share/baselayout/sudo.conf")
    _link(root, f"{SYSTEM}/multi-user.target.wants/sshd.service", f"/{VENDOR}/sshd.service")
    _link(root, f"{VENDOR}/multi-user.target.wants/zincati.service", "../zincati.service")
    # core's groups live in /etc/group only (etc-group-members in fedora-coreos-base.yaml); the second group
    # database (the lab's stand-in for nss-altfiles' /usr/lib/group) lists no members.
    write_file(root / "usr/lib/group", "wheel:x:1010:\nsudo:x:27:\ndocker:x:233:\n")
    _link(root, "etc/group.cache", "../usr/lib/group")
    for db in ("etc/group", "etc/gshadow"):
        _drop_groups(root / db, ("rkt", "rkt-admin"))
        _drop_member(root / db, "core", ("docker",))
        _add_member(root / db, "core", ("wheel", "sudo", "adm", "systemd-journal"))


def _common(root: Path, seed: SeedInput) -> None:
    write_file(root / "etc/hostname", seed.name + "\n")
    write_file(root / "etc/hosts", "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
               f"{seed.address}\t{seed.name}\n")
    write_file(root / "etc/machine-id", seed.machine_id + "\n", mode=0o444)
    key = seed.host_key
    write_file(root / "etc/ssh/ssh_host_ed25519_key", key.read_bytes(), mode=0o600)
    write_file(root / "etc/ssh/ssh_host_ed25519_key.pub", Path(f"{key}.pub").read_bytes())
    for user in ("core", "ops"):
        account = seed.accounts[user]
        write_file(root / f"home/{user}/.ssh/authorized_keys", seed.authorized_key.strip() + "\n",
                   mode=0o600, uid=account.uid, gid=account.gid)
    etcd = seed.accounts["etcd"]
    tls = root / TLS_DIR.lstrip("/")
    certs = seed.certs
    write_file(tls / "ca.pem", certs.ca.read_bytes())
    write_file(tls / "server.pem", certs.server.read_bytes(), uid=etcd.uid, gid=etcd.gid)
    write_file(tls / "server-key.pem", certs.server_key.read_bytes(), mode=0o600, uid=etcd.uid, gid=etcd.gid)
    write_file(tls / "client.pem", certs.client.read_bytes())
    write_file(tls / "client-key.pem", certs.client_key.read_bytes(), mode=0o600)


def _cloudinit(root: Path, seed: SeedInput, etcd_unit: str) -> None:
    """The host's "cloud-config", as the drop-in bodies the image's cloudinit generator copies to /run."""
    ip = seed.address
    oem = root / "usr/share/oem/cloudinit"
    write_file(oem / f"{etcd_unit}.conf", _environment({
        "ETCD_ADVERTISE_CLIENT_URLS": f"http://{ip}:2379",
        "ETCD_INITIAL_ADVERTISE_PEER_URLS": "http://127.0.0.1:2380",
        "ETCD_INITIAL_CLUSTER": "default=http://127.0.0.1:2380",
        "ETCD_LISTEN_CLIENT_URLS": "http://0.0.0.0:2379",
        "ETCD_LISTEN_PEER_URLS": "http://127.0.0.1:2380",
    }))
    tls = seed.profile["etcd"] == "tls"
    scheme = "https" if tls else "http"
    fleet = {"FLEET_ETCD_SERVERS": f"{scheme}://{ip}:2379", "FLEET_PUBLIC_IP": ip}
    locksmith = {"LOCKSMITHD_ENDPOINT": f"{scheme}://{ip}:2379"}
    if tls:
        fleet |= {"FLEET_ETCD_CAFILE": f"{TLS_DIR}/ca.pem", "FLEET_ETCD_CERTFILE": f"{TLS_DIR}/client.pem",
                  "FLEET_ETCD_KEYFILE": f"{TLS_DIR}/client-key.pem"}
        locksmith |= {"LOCKSMITHD_ETCD_CAFILE": f"{TLS_DIR}/ca.pem",
                      "LOCKSMITHD_ETCD_CERTFILE": f"{TLS_DIR}/client.pem",
                      "LOCKSMITHD_ETCD_KEYFILE": f"{TLS_DIR}/client-key.pem"}
    if seed.profile["fleet"] != "missing":
        write_file(oem / "fleet.service.conf", _environment(fleet))
    write_file(oem / "locksmithd.service.conf", _environment(locksmith))


def _environment(variables: Mapping[str, str]) -> str:
    """A drop-in as coreos-cloudinit writes it: [Service] and one Environment="KEY=value" per variable."""
    return "[Service]\n" + "".join(f'Environment="{key}={value}"\n' for key, value in variables.items())


def _remove(root: Path, *paths: str) -> None:
    """Delete files from the overlay (overlayfs records whiteouts), so the units are simply not there."""
    for rel in paths:
        path = root / rel
        if path.is_symlink() or path.exists():
            path.unlink()


def _link(root: Path, rel: str, target: str) -> None:
    path = root / rel
    if path.is_symlink() or path.is_file():
        path.unlink()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.symlink_to(target)


def _rewrite_groups(db: Path, edit: Callable[[list[str]], list[str] | None]) -> None:
    """Rewrite an /etc/group-format file line by line (`edit` gets the fields, returns new ones or None to drop
    the line), keeping its mode and owner."""
    lines = []
    for line in db.read_text().splitlines():
        fields = line.split(":")
        if len(fields) == 4:
            new = edit(fields)
            if new is None:
                continue
            line = ":".join(new)
        lines.append(line)
    stat = db.stat()
    write_file(db, "\n".join(lines) + "\n", mode=stat.st_mode & 0o7777, uid=stat.st_uid, gid=stat.st_gid)


def _drop_groups(db: Path, groups: tuple[str, ...]) -> None:
    _rewrite_groups(db, lambda f: None if f[0] in groups else f)


def _add_member(db: Path, user: str, groups: tuple[str, ...]) -> None:
    def add(fields: list[str]) -> list[str]:
        members = [m for m in fields[3].split(",") if m]
        if fields[0] in groups and user not in members:
            fields[3] = ",".join([*members, user])
        return fields
    _rewrite_groups(db, add)


def _drop_member(db: Path, user: str, groups: tuple[str, ...]) -> None:
    """Remove `user` from the member lists of `groups` in an /etc/group-format file, keeping its mode."""
    def drop(fields: list[str]) -> list[str]:
        if fields[0] in groups:
            fields[3] = ",".join(m for m in fields[3].split(",") if m and m != user)
        return fields
    _rewrite_groups(db, drop)
