"""Seeded host states: which state each lab host starts in, and the files that put it there.

A profile is a flat dict, one value per dimension. Host 1 is always all-vanilla (every control fails). Other
hosts draw each dimension independently from a generator seeded by (seed, host index), so a host's state does
not depend on the lab size; then, when the lab is big enough, missing values are handed to hosts whose value
is not unique, so a demo fleet shows every state. States are applied by writing into the host's overlay
before it boots (no SSH). No state touches core's sudo rule: the lab inventory logs in as core.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from hardnir.lab.certs import HostCerts
from hardnir.lab.common import write_file
from hardnir.lab.image import Account

DIMENSIONS: dict[str, tuple[str, ...]] = {
    "os": ("coreos", "flatcar"),
    "sshd": ("vanilla", "restricted"),
    "etcd": ("vanilla", "tls", "missing"),
    "fleet": ("vanilla", "root-only", "missing"),
    "groups": ("vanilla", "etc-removed"),
    "docker": ("vanilla", "missing"),
}
# How often each value is drawn (same order as DIMENSIONS): mostly default hosts, some hardened, few missing.
WEIGHTS: dict[str, tuple[float, ...]] = {
    "os": (0.7, 0.3),
    "sshd": (0.6, 0.4),
    "etcd": (0.45, 0.35, 0.2),
    "fleet": (0.45, 0.35, 0.2),
    "groups": (0.6, 0.4),
    "docker": (0.75, 0.25),
}
VANILLA: dict[str, str] = {dim: values[0] for dim, values in DIMENSIONS.items()}

SYSTEM = "etc/systemd/system"
VENDOR = "usr/lib/systemd/system"
TLS_DIR = "/etc/ssl/etcd"

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


def draw_profiles(count: int, seed: int) -> list[dict[str, str]]:
    """Profiles of hosts 1..count for `seed`; deterministic."""
    profiles = [dict(VANILLA)]
    for index in range(2, count + 1):
        rng = random.Random(f"hardnir-lab:{seed}:{index}")
        profiles.append({dim: rng.choices(values, WEIGHTS[dim])[0] for dim, values in DIMENSIONS.items()})
    for profile in profiles:
        _normalise(profile)
    _cover(profiles, random.Random(f"hardnir-lab:{seed}:cover:{count}"))
    return profiles


def _normalise(profile: dict[str, str]) -> None:
    # Without etcd2 there is no fleet or locksmithd either (the "missing" etcd state removes all three).
    if profile["etcd"] == "missing":
        profile["fleet"] = "missing"


def _cover(profiles: list[dict[str, str]], rng: random.Random) -> None:
    others = range(1, len(profiles))
    for dim, values in DIMENSIONS.items():
        for value in values:
            counts = Counter(profiles[i][dim] for i in others)
            if counts[value]:
                continue
            candidates = [
                i for i in others
                if counts[profiles[i][dim]] > 1 and not (dim == "fleet" and profiles[i]["etcd"] == "missing")
            ]
            if candidates:
                chosen = profiles[rng.choice(candidates)]
                chosen[dim] = value
                _normalise(chosen)


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
    _common(root, seed)
    if profile["os"] == "flatcar":
        write_file(root / "etc/os-release", FLATCAR_OS_RELEASE)
        write_file(root / "usr/lib/os-release", FLATCAR_OS_RELEASE)
    if profile["sshd"] == "restricted":
        write_file(root / SYSTEM / "sshd.socket.d/10-sshd-listen.conf",
                   f"[Socket]\nListenStream=\nListenStream={seed.address}:22\nFreeBind=true\n")
    if profile["etcd"] == "missing":
        _remove(root, f"{VENDOR}/etcd2.service", f"{SYSTEM}/multi-user.target.wants/etcd2.service",
                f"{VENDOR}/locksmithd.service", f"{VENDOR}/multi-user.target.wants/locksmithd.service",
                "usr/lib/locksmith/locksmithd")
    else:
        _cloudinit(root, seed)
    if profile["etcd"] == "tls":
        write_file(root / SYSTEM / "etcd2.service.d/40-site-tls.conf", _environment({
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
        for db in ("etc/group", "etc/gshadow"):
            _drop_member(root / db, "core", ("wheel", "docker", "rkt"))


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


def _cloudinit(root: Path, seed: SeedInput) -> None:
    """The host's "cloud-config", as the drop-in bodies the image's cloudinit generator copies to /run."""
    ip = seed.address
    oem = root / "usr/share/oem/cloudinit"
    write_file(oem / "etcd2.service.conf", _environment({
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


def _drop_member(db: Path, user: str, groups: tuple[str, ...]) -> None:
    """Remove `user` from the member lists of `groups` in an /etc/group-format file, keeping its mode."""
    lines = []
    for line in db.read_text().splitlines():
        fields = line.split(":")
        if len(fields) == 4 and fields[0] in groups:
            fields[3] = ",".join(m for m in fields[3].split(",") if m and m != user)
            line = ":".join(fields)
        lines.append(line)
    stat = db.stat()
    write_file(db, "\n".join(lines) + "\n", mode=stat.st_mode & 0o7777, uid=stat.st_uid, gid=stat.st_gid)
