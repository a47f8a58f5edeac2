"""`hardnir init`: a new SimpleInventory folder from a list of hosts, one per line (`[user@]host[:port]`).

It writes hosts.yaml, groups.yaml (empty, with commented examples) and defaults.yaml (the `hardnir` connection
options, strict host keys against the inventory's own known_hosts), and never overwrites a file that exists.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import yaml

DEFAULT_USER = "core"  # the login user of CoreOS Container Linux, Flatcar and Fedora CoreOS
INVENTORY_FILES = ("hosts.yaml", "groups.yaml", "defaults.yaml")

_DNS_NAME = re.compile(r"(?=.{1,253}$)[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
                       r"(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)*\.?")
_USER = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,31}\$?")


class HostsFileError(ValueError):
    """Bad lines in the hosts list: `problems` holds one message per bad line."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__(problems[0] if len(problems) == 1 else f"{problems[0]} (and {len(problems) - 1} more)")
        self.problems = problems


@dataclass(frozen=True)
class HostLine:
    """One host of the list. `name` (the inventory name) is the line without `user@`."""

    name: str
    hostname: str
    port: int | None = None
    username: str | None = None


def parse_line(text: str) -> HostLine:
    """`[user@]host[:port]`, with IPv6 as `[addr]:port` or a bare address; raises ValueError with the reason."""
    if any(c.isspace() for c in text):
        raise ValueError("one host per line, without spaces")
    username: str | None = None
    if "@" in text:
        username, _, text = text.rpartition("@")
        if not _USER.fullmatch(username):
            raise ValueError(f"bad user name {username!r}")
    port: int | None = None
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise ValueError("expected [address]:port")
        port_text = rest[1:] if rest else None
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
    else:
        host, port_text = text, None  # a name, an IPv4 address or a bare IPv6 address
    if port_text is not None:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise ValueError(f"port must be a number 1-65535, not {port_text!r}")
        port = int(port_text)
    if not host:
        raise ValueError("no host name or address")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        if ":" in host or not _DNS_NAME.fullmatch(host) or host.replace(".", "").isdigit():
            raise ValueError(f"{host!r} is neither a host name nor an IP address") from None
    else:
        host = str(address)
    name = host if port is None else (f"[{host}]:{port}" if ":" in host else f"{host}:{port}")
    return HostLine(name=name, hostname=host, port=port, username=username)


def parse_hosts(lines: Iterable[str], source: str = "hosts") -> list[HostLine]:
    """Every host of the list; blank lines and `#` comments are skipped. Raises HostsFileError on bad lines."""
    hosts: list[HostLine] = []
    problems: list[str] = []
    seen: dict[str, int] = {}
    for number, raw in enumerate(lines, start=1):
        text = raw.split("#", 1)[0].strip()
        if not text:
            continue
        try:
            host = parse_line(text)
        except ValueError as exc:
            problems.append(f"{source} line {number}: {text!r}: {exc}")
            continue
        if host.name in seen:
            problems.append(f"{source} line {number}: {host.name!r} is already on line {seen[host.name]}")
            continue
        seen[host.name] = number
        hosts.append(host)
    if problems:
        raise HostsFileError(problems)
    if not hosts:
        raise HostsFileError([f"{source}: no hosts (one name or address per line)"])
    return hosts


def hosts_yaml(hosts: Iterable[HostLine]) -> str:
    entries: dict[str, dict[str, object]] = {}
    for host in hosts:
        entry: dict[str, object] = {"hostname": host.hostname}
        if host.port is not None:
            entry["port"] = host.port
        if host.username is not None:
            entry["username"] = host.username
        entries[host.name] = entry
    header = "# Written by `hardnir init`. One entry per host: hostname, and port or username where not the default.\n"
    return header + yaml.safe_dump(entries, sort_keys=False, default_flow_style=False)


GROUPS_YAML = """\
# Groups share settings between hosts; a host joins with `groups: [name]` in hosts.yaml. Examples:
#
# production:
#   data:
#     sshd_socket: {policy: restricted}   # sshd listens only on the inventory address (the default policy)
#     fleet_socket: {policy: mask}
# etcd:
#   data:
#     etcd_cluster: prod                  # members of one cluster are restarted one at a time
# bastioned:
#   connection_options:
#     hardnir:
#       extras:
#         jump_host: {hostname: bastion.example.net, username: core}
{}
"""


def defaults_yaml(known_hosts: Path) -> str:
    return f"""\
# Written by `hardnir init`. Settings for every host, unless a group or the host sets its own.
username: {DEFAULT_USER}
port: 22
connection_options:
  hardnir:
    extras:
      # Without key_filename, hardnir uses the ssh-agent and then ~/.ssh/id_ed25519, id_ecdsa, id_rsa (as OpenSSH).
      # key_filename: ~/.ssh/id_ed25519
      known_hosts: {json.dumps(str(known_hosts))}
      host_key_policy: strict        # unknown or changed host keys are refused: `hardnir keys scan` records them
      connect_timeout: 10
      command_timeout: 120
      # sudo_password_env: HARDNIR_SUDO_PASSWORD   # only if sudo needs a password (read from the environment)
      # jump_host: {{hostname: bastion.example.net, username: core}}
# Control parameters, e.g. where etcd's certificates already are on each host (hardnir makes no PKI):
# data:
#   etcd_tls: {{ca_file: /etc/ssl/etcd/ca.pem, cert_file: /etc/ssl/etcd/server.pem, key_file: ...}}
data: {{}}
"""


def init_inventory(directory: Path, hosts: list[HostLine]) -> list[Path]:
    """Write the three files into `directory` (created if missing); returns the files written.

    Refuses (FileExistsError, before writing anything) when any of them exists.
    """
    existing = [directory / name for name in INVENTORY_FILES if (directory / name).exists()]
    if existing:
        raise FileExistsError(f"{existing[0]} already exists; hardnir init never overwrites (choose a new folder)")
    directory.mkdir(parents=True, exist_ok=True)
    contents = {
        "hosts.yaml": hosts_yaml(hosts),
        "groups.yaml": GROUPS_YAML,
        "defaults.yaml": defaults_yaml(directory.resolve() / "known_hosts"),
    }
    written = []
    for name, text in contents.items():
        path = directory / name
        with path.open("x", encoding="utf-8") as handle:  # "x": fails rather than overwrite a file made meanwhile
            handle.write(text)
        written.append(path)
    return written
