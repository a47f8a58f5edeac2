"""Typed views over probe items: units, files, sockets, groups, sudo, environments, listeners.

Every accessor tolerates a missing or garbled item and answers "unknown" rather than raising, because checks
must turn odd hosts into findings, never into tracebacks.
"""

from __future__ import annotations

import base64
import binascii
import functools
import ipaddress
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field

from hardnir.platforms import platform_of
from hardnir.probe import Item


@dataclass(frozen=True)
class Unit:
    name: str
    props: dict[str, list[str]]
    probed: bool

    def get(self, key: str, default: str = "") -> str:
        values = self.props.get(key)
        return values[-1] if values else default

    @property
    def load_state(self) -> str:
        return self.get("LoadState", "unknown")

    @property
    def active_state(self) -> str:
        return self.get("ActiveState", "unknown")

    @property
    def is_enabled(self) -> str:
        """`systemctl is-enabled`'s answer: the unit file state (older records carry it as IsEnabled)."""
        return self.get("IsEnabled") or self.get("UnitFileState", "unknown")

    @property
    def exists(self) -> bool:
        return self.load_state not in ("not-found", "unknown")

    @property
    def masked(self) -> bool:
        return self.load_state == "masked" or self.is_enabled in ("masked", "masked-runtime")

    @property
    def active(self) -> bool:
        return self.active_state in ("active", "activating", "reloading")

    @property
    def listen(self) -> list[str]:
        """Listen entries, e.g. `[::]:22 (Stream)` -> `[::]:22`."""
        return [re.sub(r"\s+\([A-Za-z]+\)$", "", v) for v in self.props.get("Listen", []) if v]

    @property
    def drop_ins(self) -> list[str]:
        return self.get("DropInPaths").split()

    @functools.cached_property
    def environment(self) -> dict[str, str]:
        return parse_environment_property(self.get("Environment"))


@dataclass(frozen=True)
class FileFact:
    path: str
    kind: str  # file, link, missing, other, unknown
    target: str = ""
    mode: str = ""
    owner: str = ""
    group: str = ""
    sha256: str = ""
    content: str | None = None

    @property
    def exists(self) -> bool:
        return self.kind not in ("missing", "unknown")


@dataclass(frozen=True)
class SocketFact:
    path: str
    present: bool
    mode: str = ""
    owner: str = ""
    group: str = ""
    user_writable: bool | None = None

    @property
    def describe(self) -> str:
        return f"{self.mode} {self.owner}:{self.group}" if self.present else "absent"


@dataclass(frozen=True)
class Holder:
    """A process that holds a listening socket: pid, command name, and the unit its cgroup names."""

    pid: int
    comm: str
    unit: str

    @property
    def describe(self) -> str:
        return f"{self.unit or 'no unit'} (pid {self.pid} {self.comm})"

    @property
    def is_pid1(self) -> bool:
        """systemd itself: it holds the sockets of active socket units."""
        return self.pid == 1


@dataclass(frozen=True)
class LiveListener:
    address: str  # the local address `ss` shows: a unix path or host:port
    holders: tuple[Holder, ...]


@dataclass(frozen=True)
class ListenFact:
    """What listens on a unix path or TCP port right now (`listen:` items). `probed` False: unknown."""

    target: str
    probed: bool
    listeners: tuple[LiveListener, ...] = ()

    @property
    def listening(self) -> bool:
        return bool(self.listeners)

    @property
    def holders(self) -> tuple[Holder, ...]:
        return tuple(dict.fromkeys(h for lst in self.listeners for h in lst.holders))

    @property
    def inheritors(self) -> tuple[Holder, ...]:
        """Holders other than systemd itself: services that were handed (or opened) the listening socket."""
        return tuple(h for h in self.holders if not h.is_pid1)

    def units_holding(self) -> list[str]:
        """Service units among the inheritors (what a fix can restart), in order, once each."""
        return list(dict.fromkeys(h.unit for h in self.inheritors if h.unit.endswith(".service")))

    @property
    def describe(self) -> str:
        if not self.probed:
            return "unknown"
        if not self.listeners:
            return "nothing listens"
        return "held by " + describe_holders(self.holders)


def describe_holders(holders: tuple[Holder, ...] | list[Holder]) -> str:
    """`fleet.service (pid 57 fleetd, pid 90 sleep), init.scope (pid 1 systemd)`: grouped by unit, in order."""
    units: dict[str, list[str]] = {}
    for holder in holders:
        units.setdefault(holder.unit or "no unit", []).append(f"pid {holder.pid} {holder.comm}")
    return ", ".join(f"{unit} ({', '.join(pids)})" for unit, pids in units.items())


_HOLDER = re.compile(r'\("((?:[^"\\]|\\.)*)",pid=(\d+),fd=\d+\)')
_UNIT_SUFFIXES = (".service", ".scope", ".socket", ".mount", ".swap")


def unit_of_cgroup(path: str) -> str:
    """The deepest unit a cgroup path names: `/system.slice/fleet.service` -> `fleet.service`."""
    units = [part for part in path.split("/") if part.endswith(_UNIT_SUFFIXES)]
    return units[-1] if units else path


@dataclass
class Facts:
    """All probe items of one host, with typed accessors."""

    items: Mapping[str, Item]
    host: str = ""
    address: str = ""
    extra: dict[str, str] = field(default_factory=dict)
    _units: dict[str, Unit] = field(default_factory=dict, repr=False, compare=False)
    _files: dict[str, FileFact] = field(default_factory=dict, repr=False, compare=False)

    def item(self, name: str) -> Item | None:
        return self.items.get(name)

    def text(self, name: str) -> str:
        item = self.items.get(name)
        return item.text if item else ""

    def rc(self, name: str) -> int | None:
        item = self.items.get(name)
        return item.rc if item else None

    def unit(self, name: str) -> Unit:
        cached = self._units.get(name)
        if cached is not None:
            return cached
        item = self.items.get(f"unit:{name}")
        if item is None:
            return Unit(name, {}, probed=False)
        props: dict[str, list[str]] = {}
        for key, value in _properties(item.text):
            props.setdefault(key, []).append(value.strip())
        unit = self._units[name] = Unit(name, props, probed=True)
        return unit

    def file(self, path: str) -> FileFact:
        """The file's type, mode, owner and content (parsed once per path: several checks read the same file)."""
        cached = self._files.get(path)
        if cached is None:
            cached = self._files[path] = self._file(path)
        return cached

    def _file(self, path: str) -> FileFact:
        item = self.items.get(f"file:{path}")
        if item is None:
            return FileFact(path, "unknown")
        kv = _key_values(item.text)
        kind = kv.get("type", "unknown")
        mode = owner = group = ""
        stat = kv.get("stat", "").split()
        if kind == "file" and len(stat) >= 3:
            mode, owner, group = stat[0], stat[1], stat[2]
        content: str | None = None
        if "content" in kv:
            try:
                content = base64.b64decode(kv["content"], validate=True).decode("utf-8", "replace")
            except (binascii.Error, ValueError):
                content = None
        return FileFact(path, kind, kv.get("target", ""), mode, owner, group, kv.get("sha256", ""), content)

    def socket(self, path: str) -> SocketFact:
        item = self.items.get(f"socket:{path}")
        if item is None:
            return SocketFact(path, False)
        kv = _key_values(item.text)
        stat = kv.get("stat", "missing").split()
        if len(stat) < 3:
            return SocketFact(path, False)
        writable = {"yes": True, "no": False}.get(kv.get("user_writable", ""))
        return SocketFact(path, True, stat[0], stat[1], stat[2], writable)

    def listening(self, target: str) -> ListenFact:
        """Who listens on a unix path or `tcp:PORT` now (see `probe.listen_item`)."""
        item = self.items.get(f"listen:{target}")
        if item is None or item.rc != 0:
            return ListenFact(target, False)
        cgroups: dict[int, str] = {}
        lines: list[str] = []
        for line in item.text.splitlines():
            key, sep, value = line.partition("=")
            if key == "listener" and sep:
                lines.append(value)
            elif key.startswith("cgroup.") and key[7:].isdigit():
                cgroups[int(key[7:])] = value.strip()
        listeners = []
        for line in lines:
            cols = line.split()
            address = cols[4] if len(cols) > 4 else ""
            holders = tuple(Holder(int(pid), comm, unit_of_cgroup(cgroups.get(int(pid), "")))
                            for comm, pid in _HOLDER.findall(line))
            listeners.append(LiveListener(address, holders))
        return ListenFact(target, True, tuple(listeners))

    def process_env(self, unit: str) -> dict[str, str] | None:
        item = self.items.get(f"procenv:{unit}")
        if item is None or item.rc != 0:
            return None
        env: dict[str, str] = {}
        for line in item.text.splitlines():
            key, sep, value = line.partition("=")
            if sep:
                env[key] = value
        return env

    def env_files(self, unit: str) -> dict[str, dict[str, str]]:
        """Contents of the unit's EnvironmentFiles, in order, parsed as KEY=value lines."""
        files: dict[str, dict[str, str]] = {}
        current: dict[str, str] | None = None
        for line in self.text(f"envfiles:{unit}").splitlines():
            if line.startswith("## "):
                current = files.setdefault(line[3:].strip(), {})
            elif current is not None:
                current.update(parse_env_file(line))
        return files

    def summary(self) -> str:
        """One line: how many facts, from which host and platform (what a printed task result shows)."""
        version = self.os_release.get("VERSION_ID", "")
        return f"{len(self.items)} facts from {self.host or '?'} ({self.platform} {version})".replace(" )", ")")

    @property
    def login_user(self) -> str:
        return self.text("cmd:login-user").strip()

    @functools.cached_property
    def os_release(self) -> Mapping[str, str]:
        """/etc/os-release, parsed once (every control's platform gate reads it)."""
        return parse_env_file(self.text("cmd:os-release"))

    @functools.cached_property
    def platform(self) -> str:
        """`coreos`, `flatcar`, `fcos`, another os-release ID, or `unknown` (see `hardnir.platforms`)."""
        return platform_of(self.os_release)

    @property
    def platform_version(self) -> str:
        return self.os_release.get("VERSION_ID", "")

    @property
    def listeners(self) -> list[str]:
        """Local address:port of every listening TCP socket (`ss -ltn`)."""
        out = []
        for line in self.text("cmd:listeners").splitlines():
            cols = line.split()
            if len(cols) >= 4:
                out.append(cols[3])
        return out

    @property
    def addresses(self) -> list[str]:
        return [a.split("/")[0] for a in self.text("cmd:addresses").split() if a]


_PROPERTY = re.compile(r"^([A-Za-z]+)=(.*)$", re.MULTILINE)
# Line breaks `str.splitlines` knows besides "\n" (a `$` in a MULTILINE pattern only knows "\n").
_OTHER_LINE_BREAKS = re.compile("[\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")


def _properties(text: str) -> list[tuple[str, str]]:
    """`Key=value` lines of `systemctl show` (keys of ASCII letters), in order; one regex pass for the usual text,
    a line-by-line scan when it holds line breaks other than newlines (every line `str.splitlines` sees)."""
    if not _OTHER_LINE_BREAKS.search(text):
        return _PROPERTY.findall(text)
    found = []
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.isalpha() and key.isascii():
            found.append((key, value))
    return found


def _key_values(text: str) -> dict[str, str]:
    kv: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            kv[key.strip()] = value
    return kv


_ENV_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def parse_env_file(text: str) -> dict[str, str]:
    """KEY=value lines as systemd's EnvironmentFile= reads them (quotes stripped, comments ignored)."""
    env: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not _ENV_KEY.fullmatch(key):
            continue
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        env[key] = value
    return env


def parse_environment_property(value: str) -> dict[str, str]:
    """`systemctl show -p Environment` prints space-separated, shell-quoted KEY=value words."""
    env: dict[str, str] = {}
    if not any(ch in value for ch in "\"'\\"):
        words = value.split()  # the usual case, without shlex's per-character cost
    else:
        try:
            words = shlex.split(value)
        except ValueError:
            words = value.split()
    for word in words:
        key, sep, val = word.partition("=")
        if sep:
            env[key] = val
    return env


def is_wildcard_listen(entry: str) -> bool:
    """`[::]:22`, `0.0.0.0:22`, `*:22` or a bare port listen on every interface."""
    entry = entry.strip()
    if entry.isdigit():
        return True
    host, _, _port = entry.rpartition(":")
    host = host.strip("[]")
    return host in ("", "::", "0.0.0.0", "*")  # noqa: S104 (detecting, not binding)


def listen_policy_problem(listen: list[str], allowed: list[str], entries: str = "listen entries") -> str:
    """Why a listen list breaks a restricted policy: `listens on all interfaces: ...`, `<entries> outside policy:
    ...`, or '' when it keeps to the allowed addresses (sshd.socket's Listen= and sshd.service's ListenAddress)."""
    wildcard = [e for e in listen if is_wildcard_listen(e)]
    if wildcard:
        return f"listens on all interfaces: {', '.join(wildcard)}"
    outside = [e for e in listen if e not in allowed]
    return f"{entries} outside policy: {', '.join(outside)}" if outside else ""


def listen_port(entry: str) -> str:
    entry = entry.strip()
    return entry if entry.isdigit() else entry.rpartition(":")[2]


@functools.lru_cache(maxsize=1024)  # the same few literals on every host; ipaddress parses cost 10-20 us each
def is_loopback_host(host: str) -> bool:
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


_URL_HOST = re.compile(r"^[a-z]+://(\[[^\]]+\]|[^:/]+)")


def url_host(url: str) -> str:
    match = _URL_HOST.match(url.strip())
    return match.group(1).strip("[]") if match else ""


def split_urls(value: str) -> list[str]:
    return [u.strip() for u in value.split(",") if u.strip()]
