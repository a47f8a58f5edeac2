"""`hardnir keys scan` and `hardnir keys check`: each host's SSH key, fetched without authenticating.

The key exchange alone (paramiko's `Transport.start_client`) gives the host key; nothing logs in. `scan` records
unknown keys in the inventory's known_hosts only when told how to trust them: `--accept` (trust on first use,
each accepted key written to a log next to known_hosts) or `--expect FILE` (fingerprints from the cloud console
or the provisioning system; only matching keys are written). A known key that changed is never replaced. `check`
writes nothing.
"""

from __future__ import annotations

import contextlib
import getpass
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import paramiko

from hardnir.fingerprints import parse_expected
from hardnir.known_hosts import KnownHosts
from hardnir.ssh import (
    CONNECTION_NAME,
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_KNOWN_HOSTS,
    _describe_os_error,
    _tcp_socket,
    fingerprint,
    known_hosts_name,
)

EXIT_OK, EXIT_NOT_TRUSTED, EXIT_UNREACHABLE = 0, 1, 4
TRANSIENT_RETRIES = 3

# What each status means for the host; "ok" ones leave it ready for strict host-key checking.
OK_STATUSES = ("known", "accepted", "verified")
FIXES = {
    "unknown": "record the keys: hardnir keys scan {inv} --accept (or --expect FILE)",
    "changed": "verify the new key out of band; if the host was rebuilt: ssh-keygen -R '{name}' -f {known_hosts}, "
               "then scan again",
    "mismatch": "do not trust this host until the fingerprint is explained (wrong host, rebuilt, or intercepted)",
    "not_expected": "add the host's fingerprint to the --expect file",
    "unreachable": "check the address and port, and that sshd runs and the network lets you in",
    "skipped": "add its key to {known_hosts} by hand (ssh-keyscan through the bastion, then verify it)",
}


# --- known_hosts: read once per command, append under a lock (small on purpose: the one place to change) ----


def load_known_hosts(paths: Iterable[Path]) -> dict[Path, KnownHosts]:
    """Each known_hosts file parsed once, into the index every connection shares (a missing file is empty)."""
    return {path: KnownHosts.shared(path) for path in paths}


def append_known_hosts(path: Path, entries: Sequence[tuple[str, paramiko.PKey]]) -> list[str]:
    """Append `name keytype base64` lines (under a lock and an flock); returns the names written.

    A name that got a key meanwhile (another process, between our read and this lock) is left alone.
    """
    index = KnownHosts.shared(path)
    return [name for name, key in entries if index.append(name, key.get_name(), key.get_base64())]


def log_path(known_hosts: Path) -> Path:
    """Where trust decisions are recorded: next to known_hosts."""
    return known_hosts.with_name(known_hosts.name + ".log")


# --- what is scanned, and what was found ------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    host: str  # inventory name
    hostname: str
    port: int
    known_hosts: Path
    timeout: float = DEFAULT_CONNECT_TIMEOUT
    via_jump_host: bool = False

    @property
    def name(self) -> str:
        """The name in known_hosts (`addr`, or `[addr]:port`), as the connection plugin looks it up."""
        return known_hosts_name(self.hostname, self.port)


@dataclass(frozen=True)
class KeyRow:
    host: str
    name: str
    key_type: str
    fingerprint: str
    status: str  # known | unknown | changed | accepted | verified | mismatch | not_expected | unreachable | skipped
    message: str = ""
    known_hosts: str = ""

    @property
    def ok(self) -> bool:
        return self.status in OK_STATUSES


def target_of(host: Any) -> Target:
    """A Nornir host -> what to scan, from its hostname, port and `hardnir` connection options."""
    extras = host.get_connection_parameters(CONNECTION_NAME).extras or {}
    return Target(
        host=host.name,
        hostname=str(host.hostname),
        port=int(host.port or 22),
        known_hosts=Path(str(extras.get("known_hosts") or DEFAULT_KNOWN_HOSTS)).expanduser(),
        timeout=float(extras.get("connect_timeout", DEFAULT_CONNECT_TIMEOUT)),
        via_jump_host=bool(extras.get("jump_host")),
    )


def _key_types(preferred: str | None, available: Sequence[str]) -> list[str]:
    """`available` with the preferred host key type first (an RSA key is asked for with its SHA-2 signatures)."""
    if not preferred:
        return list(available)
    first = ["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"] if preferred == "ssh-rsa" else [preferred]
    first = [t for t in first if t in available]
    return first + [t for t in available if t not in first]


def fetch_key(target: Target, preferred: str | None = None) -> paramiko.PKey:
    """The host's public key from the SSH key exchange; never authenticates. Raises OSError/SSHException."""
    delay = 0.3
    for attempt in range(1, TRANSIENT_RETRIES + 1):
        sock = _tcp_socket(target.hostname, target.port, target.timeout)
        transport = paramiko.Transport(sock)
        try:
            transport.banner_timeout = transport.handshake_timeout = target.timeout
            options = transport.get_security_options()
            options.key_types = _key_types(preferred, options.key_types)
            transport.start_client(timeout=target.timeout)
            return transport.get_remote_server_key()
        except (paramiko.SSHException, EOFError, ConnectionResetError):
            if attempt == TRANSIENT_RETRIES:
                raise
        finally:
            with contextlib.suppress(Exception):
                transport.close()
                transport.join(2)
        time.sleep(delay)
        delay *= 2
    raise AssertionError("unreachable")


def scan_one(target: Target, known: KnownHosts) -> tuple[paramiko.PKey | None, str]:
    """(key, "") or (None, why it could not be fetched)."""
    if target.via_jump_host:
        return None, "behind a jump_host: keys scan connects directly only"
    types = known.lookup(target.name).types()
    preferred = types[0] if types else None
    try:
        return fetch_key(target, preferred), ""
    except OSError as exc:
        return None, _describe_os_error(exc, target.name, target.timeout).split(": ", 1)[-1]
    except (paramiko.SSHException, EOFError) as exc:
        return None, f"SSH handshake failed ({exc.__class__.__name__}: {exc})".splitlines()[0]
    except Exception as exc:  # whatever paramiko raises on a strange server: a row, never a missing host
        return None, f"could not read the host key ({exc.__class__.__name__}: {exc})".splitlines()[0]


# --- the verdict: a pure function of the fetched key, known_hosts and the expected fingerprints ---------------


def judge(target: Target, key: paramiko.PKey | None, error: str, known: KnownHosts, mode: str,
          expected: Mapping[str, Sequence[str]] | None = None) -> KeyRow:
    """One row per host. `mode` is check, accept or expect; `expected` maps host names to SHA256 fingerprints."""
    if key is None:
        status = "skipped" if target.via_jump_host else "unreachable"
        return KeyRow(target.host, target.name, "", "", status, error, str(target.known_hosts))
    fp = fingerprint(key)
    row = KeyRow(target.host, target.name, key.get_name(), fp, "known", "", str(target.known_hosts))
    entry = known.lookup(target.name)
    wanted = _expected_for(target, expected or {}) if mode == "expect" else []
    if entry.is_revoked(key.asbytes()):
        return _with(row, "mismatch", f"marked @revoked in {target.known_hosts}")
    if entry.known:
        if entry.matches(key.get_name(), key.asbytes()):
            if wanted and fp not in wanted:
                return _with(row, "mismatch", f"in {target.known_hosts}, but the --expect file says "
                                              f"{', '.join(wanted)}")
            return row
        recorded = ", ".join(f"{k.key_type} {k.fingerprint}" for k in entry.keys)
        return _with(row, "changed", f"differs from {target.known_hosts}: {recorded}; not replaced")
    if mode == "check":
        return _with(row, "unknown", f"not in {target.known_hosts}")
    if mode == "accept":
        return _with(row, "accepted", "trusted on first use (--accept)")
    if not wanted:
        return _with(row, "not_expected", "no fingerprint for this host in the --expect file; not recorded")
    if fp in wanted:
        return _with(row, "verified", "matches the --expect file")
    return _with(row, "mismatch", f"expected {', '.join(wanted)}; not recorded")


def _with(row: KeyRow, status: str, message: str) -> KeyRow:
    return KeyRow(row.host, row.name, row.key_type, row.fingerprint, status, message, row.known_hosts)


def _expected_for(target: Target, expected: Mapping[str, Sequence[str]]) -> list[str]:
    found: list[str] = []
    for alias in dict.fromkeys((target.host, target.hostname, target.name)):
        found.extend(fp for fp in expected.get(alias, ()) if fp not in found)
    return found


# --- the command ------------------------------------------------------------------------------------------


@dataclass
class KeysOutcome:
    rows: list[KeyRow]
    written: dict[Path, list[str]]
    exit_code: int
    inventory_args: str = "-i INVENTORY_DIR"  # how the fixes name the inventory (`-i DIR` or `--config FILE`)


def run_keys(inventory: str | Path | None, mode: str, *, config: str | Path | None = None, hosts: str | None = None,
             expect: Path | None = None, workers: int | None = None,
             progress: Callable[[int], Any] | None = None) -> KeysOutcome:
    """Scan the selected hosts of an inventory folder or a Nornir config file in parallel (Nornir's runner), judge
    each key and, for accept/expect, record."""
    from nornir.core.task import Result, Task

    from hardnir.inventory import as_list, filter_hosts
    from hardnir.inventory_source import open_inventory

    expected = parse_expected(expect.read_text(encoding="utf-8"), str(expect)) if expect else None
    opened = open_inventory(inventory, config=config, workers=workers)
    nr = filter_hosts(opened.nr, as_list(hosts), None)
    targets = {name: target_of(host) for name, host in nr.inventory.hosts.items()}
    known = load_known_hosts(dict.fromkeys(t.known_hosts for t in targets.values()))
    bar = progress(len(targets)) if progress else None

    def scan(task: Task) -> Result:
        target = targets[task.host.name]
        key, error = scan_one(target, known[target.known_hosts])
        row = judge(target, key, error, known[target.known_hosts], mode, expected)
        if bar is not None:
            bar.update(target.host, [{"status": "pass" if row.ok or row.status == "unknown" else
                                      "error" if row.status == "unreachable" else "fail"}])
        return Result(host=task.host, result=(row, key))

    try:
        results = nr.run(task=scan)
    finally:
        if bar is not None:
            bar.close()
    found: list[tuple[KeyRow, paramiko.PKey | None]] = []
    for name, target in targets.items():
        if results[name].failed:  # a bug in scan itself; the host still gets its row
            found.append((judge(target, None, f"internal error: {results[name].exception}", known[target.known_hosts],
                                mode, expected), None))
        else:
            found.append(results[name][0].result)
    written = _record(found, targets, mode, expect) if mode != "check" else {}
    rows = [_with(row, "unknown", "another process recorded a key for this address meanwhile; run keys check")
            if row.status in ("accepted", "verified") and row.name not in written.get(targets[row.host].known_hosts, [])
            else row for row, _ in found]
    return KeysOutcome(rows, written, exit_code(rows), opened.args)


def _record(found: Sequence[tuple[KeyRow, paramiko.PKey | None]], targets: Mapping[str, Target], mode: str,
            expect: Path | None) -> dict[Path, list[str]]:
    """Append the accepted or verified keys to each known_hosts, and one log line per key written."""
    by_file: dict[Path, list[tuple[str, paramiko.PKey]]] = {}
    for row, key in found:
        entries = by_file.setdefault(targets[row.host].known_hosts, [])
        if row.status in ("accepted", "verified") and key is not None and row.name not in dict(entries):
            entries.append((row.name, key))
    how = "trust on first use (keys scan --accept)" if mode == "accept" else f"matched keys scan --expect {expect}"
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    operator = getpass.getuser()
    rows = {row.name: row for row, _ in found}
    written: dict[Path, list[str]] = {}
    for path, entries in by_file.items():
        if not entries:
            continue
        written[path] = names = append_known_hosts(path, entries)
        with log_path(path).open("a", encoding="utf-8") as log:
            for name in names:
                row = rows[name]
                log.write(f"{stamp} {row.status} {name} {row.key_type} {row.fingerprint} host={row.host} "
                          f"by={operator} {how}\n")
    return written


def exit_code(rows: Iterable[KeyRow]) -> int:
    """0 every key known (or just recorded); 4 a host could not be reached; else 1 (unknown, changed, mismatch)."""
    statuses = {r.status for r in rows}
    if statuses & {"unreachable", "skipped"}:
        return EXIT_UNREACHABLE
    return EXIT_OK if statuses <= set(OK_STATUSES) else EXIT_NOT_TRUSTED


def render(outcome: KeysOutcome, mode: str) -> str:
    """The table of keys, one fix line per host that is not ready, and what was written where."""
    from hardnir.report import format_table, grouped_fixes
    from hardnir.results import neutralise_controls

    lines = [format_table(
        ["host", "address", "type", "fingerprint", "status"],
        [[r.host, r.name, r.key_type or "-", r.fingerprint or "-", r.status] for r in outcome.rows],
        [False] * 5,
    )]
    for row in outcome.rows:
        if row.status in ("changed", "mismatch", "unreachable", "skipped"):  # what the table cannot show
            text = row.message if row.message.startswith(row.status) else f"{row.status}: {row.message}"
            lines.append(neutralise_controls(f"{row.host}: {text}"))
    lines += grouped_fixes([(row.status, row.host, FIXES[row.status].format(
        inv=outcome.inventory_args, name=row.name, known_hosts=row.known_hosts)) for row in outcome.rows
        if row.status in FIXES])
    for path, names in outcome.written.items():
        lines.append(f"recorded {len(names)} key(s) in {path} (log: {log_path(path)})")
    counts: dict[str, int] = {}
    for row in outcome.rows:
        counts[row.status] = counts.get(row.status, 0) + 1
    lines.append(f"{mode}: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
    return "\n".join(lines)
