"""The `hardnir` Nornir connection plugin: paramiko with strict host keys, timeouts and one command type.

Why our own plugin: nornir-paramiko pins paramiko<3 (no Terrapin fix), accepts every host key and can deadlock
on a large stderr. This one verifies the host key against the inventory's known_hosts *before* authenticating,
sets TCP_NODELAY, retries transient handshake errors with backoff, drains stdout and stderr together and
enforces every timeout on the remote side too (`timeout -k`), so a stuck command never outlives its budget.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import hashlib
import logging
import os
import select
import shlex
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paramiko

from hardnir import alarms
from hardnir.known_hosts import KnownHosts

# paramiko's own records never reach the terminal; a run routes them to its run.log (hardnir.runprep)
logging.getLogger("paramiko").addHandler(logging.NullHandler())
logging.getLogger("paramiko").propagate = False

CONNECTION_NAME = "hardnir"
DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_KNOWN_HOSTS = "~/.ssh/known_hosts"
DEFAULT_KEYS = ("~/.ssh/id_ed25519", "~/.ssh/id_ecdsa", "~/.ssh/id_rsa")
DEFAULT_COMMAND_TIMEOUT = 120.0
KILL_GRACE_S = 3
EXIT_EOF_GRACE_S = 2.0  # after the exit status, how long to wait for the output's EOF
TRANSIENT_RETRIES = 3
CONNECT_GRACE_S = 0.5
STALL_GRACE_S = 1.0  # after a command's deadline, before a connection that stopped answering is closed


class SSHError(Exception):
    """A connection-level failure, with a one-line message that names the host."""


class HostKeyError(SSHError):
    """The host's key is unknown or differs from known_hosts."""


class CommandTimeout(SSHError):
    """A command ran past its timeout (the remote side was killed)."""


@dataclass(frozen=True)
class CommandResult:
    """The one result type of every remote command."""

    command: str
    exit_status: int
    stdout: str
    stderr: str
    duration_s: float
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return self.exit_status == 0 and not self.timed_out


@dataclass
class Endpoint:
    """Where and how to reach one SSH server (the target or a jump host)."""

    hostname: str
    port: int = 22
    username: str = "root"
    password: str | None = None
    key_filename: list[str] = field(default_factory=list)
    passphrase: str | None = None


def fingerprint(key: paramiko.PKey) -> str:
    """OpenSSH-style SHA256 fingerprint of a public key."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def known_hosts_name(hostname: str, port: int) -> str:
    return hostname if port == 22 else f"[{hostname}]:{port}"


def _secret_from(extras: dict[str, Any], name: str) -> str | None:
    """A secret given inline, or through `<name>_env` (an environment variable) or `<name>_file`."""
    if extras.get(name):
        return str(extras[name])
    env = extras.get(f"{name}_env")
    if env and os.environ.get(str(env)):
        return os.environ[str(env)]
    path = extras.get(f"{name}_file")
    if path:
        return Path(str(path)).expanduser().read_text().rstrip("\n")
    return None


def _key_files(value: object) -> list[str]:
    if not value:
        return []
    items = value if isinstance(value, list | tuple) else [value]
    return [str(Path(str(item)).expanduser()) for item in items]


class HostKeyVerifier:
    """Strict (default) or accept-new host-key checking against one known_hosts file.

    The file is parsed once per process into a shared index (`hardnir.known_hosts`), not once per connection.
    """

    def __init__(self, known_hosts: str | None, policy: str) -> None:
        if policy not in ("strict", "accept-new"):
            raise SSHError(f"host_key_policy must be 'strict' or 'accept-new', not {policy!r}")
        self.path = Path(known_hosts).expanduser() if known_hosts else None
        self.policy = policy
        self.index = KnownHosts.shared(self.path)

    def preferred_type(self, name: str) -> str | None:
        types = self.index.lookup(name).types()
        return types[0] if types else None

    def verify(self, name: str, key: paramiko.PKey) -> None:
        known = self.index.lookup(name)
        key_type, blob, fp = key.get_name(), key.asbytes(), fingerprint(key)
        if known.is_revoked(blob):
            raise HostKeyError(f"{name}: host key {key_type} {fp} is marked @revoked in {self.path}; refusing")
        if known.matches(key_type, blob):
            return
        if key_type in known.types():
            raise HostKeyError(
                f"{name}: host key CHANGED ({key_type} {fp}) and differs from {self.path}; refusing"
            )
        if known.known:
            raise HostKeyError(
                f"{name}: host key {key_type} {fp} does not match the "
                f"{', '.join(known.types())} key in {self.path}; refusing"
            )
        if self.policy == "accept-new" and self.path is not None:
            if not self.index.append(name, key_type, key.get_base64()):
                self.verify(name, key)  # another thread or process recorded a key first: judge against it
            return
        where = self.path or "no known_hosts file configured"
        raise HostKeyError(f"{name}: unknown host key {key_type} {fp} (not in {where}); refusing")


def _tcp_socket(hostname: str, port: int, timeout: float) -> socket.socket:
    last: OSError | None = None
    for family, kind, proto, _, addr in socket.getaddrinfo(hostname, port, type=socket.SOCK_STREAM):
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.settimeout(timeout)
        try:
            sock.connect(addr)
            return sock
        except OSError as exc:
            sock.close()
            last = exc
    raise last or OSError(errno.EHOSTUNREACH, "no address")


def _describe_os_error(exc: OSError, target: str, timeout: float) -> str:
    if isinstance(exc, TimeoutError | socket.timeout):
        return f"{target}: connection timed out after {timeout:g}s"
    if isinstance(exc, socket.gaierror):
        return f"{target}: cannot resolve host name ({exc.strerror})"
    reason = exc.strerror or exc.__class__.__name__
    return f"{target}: unreachable ({reason})"


class _Curable(SSHError):
    """A failure that a retry can cure: refused or reset while sshd restarts, or closed before its banner."""


def open_transport(
    target: Endpoint,
    verifier: HostKeyVerifier,
    *,
    timeout: float = DEFAULT_CONNECT_TIMEOUT,
    via: paramiko.Transport | None = None,
) -> paramiko.Transport:
    """Connect, check the host key, authenticate: the whole phase, retries included, within `timeout` seconds
    (plus a grace of CONNECT_GRACE_S for a stage to notice its end).

    Only failures a retry can cure are retried, with backoff while time remains: connection refused or reset,
    or the server closing before its banner (sshd restarting). A timeout, a missing banner, a host-key problem or
    a refused login is final.
    """
    name = known_hosts_name(target.hostname, target.port)
    deadline = time.monotonic() + timeout
    delay = 0.3
    for attempt in range(1, TRANSIENT_RETRIES + 1):
        try:
            return _open_once(target, verifier, name, deadline, timeout, via)
        except _Curable as exc:
            if attempt == TRANSIENT_RETRIES or deadline - time.monotonic() <= delay:
                raise SSHError(f"{exc} (tried {attempt} time(s) within {timeout:g} s)") from None
            time.sleep(delay)
            delay *= 2
    raise AssertionError("unreachable")


def _open_once(
    target: Endpoint,
    verifier: HostKeyVerifier,
    name: str,
    deadline: float,
    timeout: float,
    via: paramiko.Transport | None,
) -> paramiko.Transport:
    remaining = max(0.1, deadline - time.monotonic())
    sock: Any
    if via is not None:
        try:
            sock = via.open_channel("direct-tcpip", (target.hostname, target.port), ("127.0.0.1", 0),
                                    timeout=remaining)
        except paramiko.ChannelException as exc:
            raise SSHError(f"{name}: jump host could not reach it ({exc})") from None
        except (paramiko.SSHException, EOFError, OSError) as exc:
            raise SSHError(f"{name}: jump host connection failed ({exc.__class__.__name__})") from None
    else:
        try:
            sock = _tcp_socket(target.hostname, target.port, remaining)
        except (ConnectionRefusedError, ConnectionResetError) as exc:
            raise _Curable(_describe_os_error(exc, name, timeout)) from None
        except OSError as exc:
            raise SSHError(_describe_os_error(exc, name, timeout)) from None
    transport = paramiko.Transport(sock)
    _without_handshake_timer(transport)
    remaining = max(0.1, deadline - time.monotonic())
    transport.banner_timeout = remaining
    transport.auth_timeout = remaining
    preferred = verifier.preferred_type(name)
    if preferred:
        options = transport.get_security_options()
        options.key_types = [preferred, *(t for t in options.key_types if t != preferred)]
    # A watchdog closes the transport at the deadline, so no stage (auth with several keys included) outlives it.
    expired = threading.Event()

    def expire() -> None:
        expired.set()
        transport.close()

    watchdog = alarms.arm(remaining + CONNECT_GRACE_S, expire)
    stage = "SSH handshake"
    try:
        try:
            transport.start_client(timeout=remaining + CONNECT_GRACE_S)  # the banner timeout reports first
            key = transport.get_remote_server_key()
        except (paramiko.SSHException, EOFError, OSError) as exc:
            raise _handshake_error(exc, name, timeout, expired.is_set()) from None
        verifier.verify(name, key)
        stage = "authentication"
        _authenticate(transport, target, name)
    except BaseException as exc:
        transport.close()
        if expired.is_set() and not isinstance(exc, HostKeyError):
            raise SSHError(f"{name}: {stage} did not finish within {timeout:g} s (connect_timeout)") from None
        raise
    finally:
        watchdog.cancel()
    transport.set_keepalive(15)
    return transport


def _no_handshake_timer(timeout: float) -> None:
    """Stands in for `Packetizer.start_handshake`, which would start a `threading.Timer` thread per key exchange."""


def _without_handshake_timer(transport: paramiko.Transport) -> None:
    """paramiko times every key exchange with a `threading.Timer`: one more thread started and cancelled per host
    (0.26 ms of CPU each, measured), and reads `handshake_timeout` only there, so hardnir does not set it. Our own
    deadlines already bound those waits (the connect watchdog in `_open_once`, then each command's watchdog, which
    also covers a re-key during a command): both close the transport, which ends the key exchange."""
    transport.packetizer.start_handshake = _no_handshake_timer  # type: ignore[method-assign]


def _handshake_error(exc: BaseException, name: str, timeout: float, expired: bool) -> SSHError:
    """What went wrong before the host key was known, and whether a retry can cure it."""
    cause = exc.__context__ if isinstance(exc, paramiko.SSHException) else exc
    text = str(exc)
    if "protocol banner" in text:
        if expired or isinstance(cause, TimeoutError | socket.timeout):
            return SSHError(f"{name}: no SSH banner within {timeout:g} s (connect_timeout)")
        return _Curable(f"{name}: the server closed the connection before its SSH banner")
    if expired or "No existing session" in text:
        return SSHError(f"{name}: SSH handshake did not finish within {timeout:g} s (connect_timeout)")
    if isinstance(exc, EOFError | ConnectionResetError | ConnectionRefusedError):
        return _Curable(f"{name}: connection reset during the SSH handshake")
    return SSHError(f"{name}: SSH handshake failed ({text.splitlines()[0] if text else exc.__class__.__name__})")


_KEY_CACHE: dict[tuple[str, int, int, str | None], paramiko.PKey] = {}
_KEY_CACHE_LOCK = threading.Lock()


def _load_key(path: str, passphrase: str | None) -> paramiko.PKey:
    """A private key, parsed once per process (not once per host) while its file is unchanged."""
    st = os.stat(path)
    cache_key = (path, st.st_ino, st.st_mtime_ns, passphrase)
    key = _KEY_CACHE.get(cache_key)
    if key is None:
        key = paramiko.PKey.from_path(path, passphrase)
        with _KEY_CACHE_LOCK:
            _KEY_CACHE[cache_key] = key
    return key


def _authenticate(transport: paramiko.Transport, target: Endpoint, name: str) -> None:
    """Keys from the inventory, else the ssh-agent and the default key files (as OpenSSH), then a password."""
    errors: list[str] = []
    paths = target.key_filename
    if not paths and target.password is None:
        with contextlib.suppress(Exception):
            for agent_key in paramiko.Agent().get_keys():
                try:
                    transport.auth_publickey(target.username, agent_key)
                    return
                except paramiko.AuthenticationException:
                    errors.append("agent key rejected")
        paths = [str(Path(p).expanduser()) for p in DEFAULT_KEYS if Path(p).expanduser().exists()]
    for path in paths:
        try:
            key = _load_key(path, target.passphrase)
        except (OSError, paramiko.SSHException) as exc:
            errors.append(f"key {path}: {exc.__class__.__name__}")
            continue
        try:
            transport.auth_publickey(target.username, key)
            return
        except paramiko.AuthenticationException:
            errors.append(f"key {path} rejected")
    if target.password is not None:
        try:
            transport.auth_password(target.username, target.password)
            return
        except paramiko.AuthenticationException:
            errors.append("password rejected")
    if not errors:
        errors.append("no key_filename or password configured")
    raise SSHError(f"{name}: authentication failed for user {target.username} ({'; '.join(errors)})")


def wrap_command(
    command: str,
    *,
    timeout: float,
    sudo: bool,
    login_user: str,
    sudo_password: bool,
) -> str:
    """The remote shell line: optional sudo, then `timeout` so the remote process dies with the budget."""
    budget = max(1, int(timeout + 0.999))
    inner = f"timeout -k {KILL_GRACE_S} {budget} sh -c {shlex.quote(command)}"
    if sudo and login_user != "root":
        prefix = "sudo -S -p '' --" if sudo_password else "sudo -n --"
        return f"{prefix} {inner}"
    return inner


class HardnirConnection:
    """Nornir connection plugin `hardnir` (entry point `nornir.plugins.connections`)."""

    def __init__(self) -> None:
        self.transport: paramiko.Transport | None = None
        self.jump: paramiko.Transport | None = None
        self.target: Endpoint | None = None
        self.host_key_fingerprint: str = ""
        self.sudo_password: str | None = None
        self.command_timeout = DEFAULT_COMMAND_TIMEOUT
        self.connect_timeout = DEFAULT_CONNECT_TIMEOUT
        self.verifier: HostKeyVerifier | None = None
        self.jump_endpoint: Endpoint | None = None

    @property
    def connection(self) -> HardnirConnection:
        """Nornir's `host.get_connection()` returns this: the plugin itself, with `run()`."""
        return self

    def open(
        self,
        hostname: str | None,
        username: str | None,
        password: str | None,
        port: int | None,
        platform: str | None,
        extras: dict[str, Any] | None = None,
        configuration: Any = None,
    ) -> None:
        options = dict(extras or {})  # never mutate the inventory's shared extras
        if not hostname:
            raise SSHError("host has no hostname in the inventory")
        self.target = Endpoint(
            hostname=hostname,
            port=int(port or 22),
            username=username or "root",
            password=password,
            key_filename=_key_files(options.get("key_filename")),
            passphrase=_secret_from(options, "passphrase"),
        )
        self.sudo_password = _secret_from(options, "sudo_password")
        self.connect_timeout = float(options.get("connect_timeout", DEFAULT_CONNECT_TIMEOUT))
        self.command_timeout = float(options.get("command_timeout", DEFAULT_COMMAND_TIMEOUT))
        self.verifier = HostKeyVerifier(
            str(options.get("known_hosts") or DEFAULT_KNOWN_HOSTS), str(options.get("host_key_policy", "strict"))
        )
        jump = options.get("jump_host")
        if jump:
            jump_options = dict(jump)
            self.jump_endpoint = Endpoint(
                hostname=str(jump_options["hostname"]),
                port=int(jump_options.get("port", 22)),
                username=str(jump_options.get("username", self.target.username)),
                password=_secret_from(jump_options, "password"),
                key_filename=_key_files(jump_options.get("key_filename")) or self.target.key_filename,
                passphrase=_secret_from(jump_options, "passphrase") or self.target.passphrase,
            )
        self._connect()

    def _connect(self) -> None:
        assert self.target is not None and self.verifier is not None
        if self.jump_endpoint is not None:
            self.jump = open_transport(self.jump_endpoint, self.verifier, timeout=self.connect_timeout)
        transport = open_transport(self.target, self.verifier, timeout=self.connect_timeout, via=self.jump)
        self.host_key_fingerprint = fingerprint(transport.get_remote_server_key())
        self.transport = transport

    def fresh(self) -> HardnirConnection:
        """A new, independent connection to the same host (proves a new login still works)."""
        assert self.target is not None and self.verifier is not None
        other = HardnirConnection()
        other.target = self.target
        other.verifier = self.verifier
        other.jump_endpoint = self.jump_endpoint
        other.sudo_password = self.sudo_password
        other.command_timeout = self.command_timeout
        other.connect_timeout = self.connect_timeout
        other._connect()
        return other

    def close(self) -> None:
        for transport in (self.transport, self.jump):
            if transport is not None:
                with contextlib.suppress(Exception):
                    # No join: paramiko's reader thread notices the close within its 0.1 s poll and exits on its
                    # own; waiting for it here cost every host up to 0.1 s of wall time.
                    transport.close()
        self.transport = None
        self.jump = None

    @property
    def login_user(self) -> str:
        return self.target.username if self.target else "root"

    def run(
        self,
        command: str,
        *,
        timeout: float | None = None,
        sudo: bool = False,
        stdin: bytes | None = None,
    ) -> CommandResult:
        """Run one command; returns its exit status, stdout, stderr (UTF-8, bad bytes replaced) and time."""
        if self.transport is None or not self.transport.is_active():
            raise SSHError(f"{self._name()}: connection is closed")
        budget = self.command_timeout if timeout is None else timeout
        needs_password = sudo and self.login_user != "root" and self.sudo_password is not None
        line = wrap_command(
            command, timeout=budget, sudo=sudo, login_user=self.login_user, sudo_password=needs_password
        )
        payload = b""
        if needs_password:
            assert self.sudo_password is not None
            payload += self.sudo_password.encode() + b"\n"
        if stdin:
            payload += stdin
        started = time.monotonic()
        deadline = started + budget + KILL_GRACE_S + 5  # the remote `timeout` kills the command; this is the backstop
        # paramiko waits without any timeout for the server's answer to the exec request (and for window space to
        # send): a server that keeps the TCP connection but stops answering would hold this thread, and its whole
        # run, forever. Just after the deadline a watchdog closes the connection, which ends every such wait.
        stalled = threading.Event()
        transport = self.transport

        def expire() -> None:
            stalled.set()
            transport.close()

        watchdog = alarms.arm(deadline - started + STALL_GRACE_S, expire)
        try:
            status, out, err, timed_out = self._exchange(line, payload, deadline)
        except SSHError:
            if stalled.is_set():
                raise SSHError(f"{self._name()}: no answer from the server within {budget:g} s (command_timeout); "
                               "connection closed") from None
            raise
        finally:
            watchdog.cancel()
        if status == 124 or status == 137:
            timed_out = True
        return CommandResult(
            command=command,
            exit_status=status,
            stdout=out.decode("utf-8", "replace"),
            stderr=err.decode("utf-8", "replace"),
            duration_s=time.monotonic() - started,
            timed_out=timed_out,
        )

    def _exchange(self, line: str, payload: bytes, deadline: float) -> tuple[int, bytes, bytes, bool]:
        assert self.transport is not None
        try:
            channel = self.transport.open_session(timeout=self.connect_timeout)
        except (paramiko.SSHException, EOFError, OSError) as exc:
            raise SSHError(f"{self._name()}: cannot open a session ({exc})") from None
        try:
            channel.exec_command(line)
            if payload:
                channel.sendall(payload)
            channel.shutdown_write()
            return _drain(channel, deadline)
        except (paramiko.SSHException, EOFError, OSError) as exc:
            raise SSHError(f"{self._name()}: connection lost while running a command ({exc})") from None
        finally:
            channel.close()

    def _name(self) -> str:
        return known_hosts_name(self.target.hostname, self.target.port) if self.target else "?"


def _drain(channel: paramiko.Channel, deadline: float) -> tuple[int, bytes, bytes, bool]:
    """Read stdout and stderr together until exit, so neither stream can fill up and block the other."""
    out: list[bytes] = []
    err: list[bytes] = []
    channel.setblocking(False)
    status_at: float | None = None
    while True:
        progressed = False
        while channel.recv_ready():
            out.append(channel.recv(1 << 16))
            progressed = True
        while channel.recv_stderr_ready():
            err.append(channel.recv_stderr(1 << 16))
            progressed = True
        drained = not channel.recv_ready() and not channel.recv_stderr_ready()
        if channel.exit_status_ready():
            # sshd may report the exit status before the last output: finish at EOF (no more data can come), or
            # after a short grace when a process the command left behind keeps its output open.
            status_at = status_at or time.monotonic()
            ended = channel.eof_received or channel.closed or time.monotonic() - status_at > EXIT_EOF_GRACE_S
            if drained and ended:
                break
        if channel.closed and not progressed and drained:
            break
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return -1, b"".join(out), b"".join(err), True
        if not progressed:
            if channel.eof_received:
                # After EOF paramiko keeps the channel's pipe readable for good: select would return at once and
                # this thread would spin, holding the GIL the transport threads need to deliver the exit status.
                channel.status_event.wait(min(remaining, 0.2))
            else:
                select.select([channel], [], [], min(remaining, 0.2))
    status = channel.recv_exit_status() if channel.exit_status_ready() else -1
    return status, b"".join(out), b"".join(err), False
