"""One known_hosts file, parsed once and shared by every connection of a run: O(1) lookups, safe from threads.

paramiko's `HostKeys.load` is quadratic in the number of lines and takes the global logging lock per line; at
10,000 hosts, parsing it twice per connection cost more than the SSH work itself. This index parses the file once
(per process, re-read only when the file changes on disk), keeps the keys as raw blobs (no key objects are built
for lines nobody asks about) and answers:

- plain names and port-qualified names (`[host]:2222`), comma-separated lists: a dict lookup;
- OpenSSH hashed names (`|1|salt|hash`): the name is hashed once per distinct salt and the result memoised, so a
  second lookup of the same name is a dict lookup. (`ssh-keygen -H` gives every line its own salt, so the first
  lookup of a name costs one HMAC per hashed line; a plain file costs nothing of the kind.)
- wildcard patterns (`*.example.com`, `!bad.example.com`) are matched with OpenSSH's rules, after the exact names;
- `@revoked` keys are refused with their own message; `@cert-authority` lines are ignored (hardnir does not accept
  host certificates) and counted, so a caller can say so.

`accept-new` appends under a lock (a thread lock plus `flock` on the file, for other processes) and the new key is
visible to later lookups of the same run at once. A changed key is never replaced.
"""

from __future__ import annotations

import base64
import binascii
import fcntl
import fnmatch
import hashlib
import hmac
import os
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

HASH_MAGIC = "|1|"


@dataclass(frozen=True)
class KnownKey:
    """One key line's key: type (`ssh-ed25519`, ...) and the raw public key blob."""

    key_type: str
    blob: bytes
    line: int

    @property
    def fingerprint(self) -> str:
        """OpenSSH-style SHA256 fingerprint."""
        return "SHA256:" + base64.b64encode(hashlib.sha256(self.blob).digest()).decode().rstrip("=")


@dataclass(frozen=True)
class Lookup:
    """What the file says about one name."""

    keys: tuple[KnownKey, ...] = ()
    revoked: tuple[KnownKey, ...] = ()

    @property
    def known(self) -> bool:
        return bool(self.keys)

    def types(self) -> list[str]:
        return list(dict.fromkeys(k.key_type for k in self.keys))

    def matches(self, key_type: str, blob: bytes) -> bool:
        return any(k.key_type == key_type and k.blob == blob for k in self.keys)

    def is_revoked(self, blob: bytes) -> bool:
        return any(k.blob == blob for k in self.revoked)


@dataclass
class _Parsed:
    plain: dict[str, list[KnownKey]] = field(default_factory=dict)
    hashed: dict[bytes, dict[bytes, list[KnownKey]]] = field(default_factory=dict)  # salt -> hash -> keys
    patterns: list[tuple[tuple[str, ...], KnownKey]] = field(default_factory=list)
    revoked: list[KnownKey] = field(default_factory=list)
    cert_authorities: int = 0
    skipped: list[int] = field(default_factory=list)  # malformed line numbers
    memo: dict[str, Lookup] = field(default_factory=dict)  # name -> answer, for this parse of the file


def _decode_hashed(entry: str) -> tuple[bytes, bytes] | None:
    parts = entry[len(HASH_MAGIC):].split("|")
    if len(parts) != 2:
        return None
    try:
        return base64.b64decode(parts[0], validate=True), base64.b64decode(parts[1], validate=True)
    except (binascii.Error, ValueError):
        return None


def hash_name(name: str, salt: bytes) -> bytes:
    """OpenSSH's hashed host name: HMAC-SHA1 of the name keyed with the salt."""
    return hmac.new(salt, name.encode(), hashlib.sha1).digest()


def _parse_line(parsed: _Parsed, number: int, raw: str) -> None:
    line = raw.strip()
    if not line or line.startswith("#"):
        return
    fields = line.split()
    marker = ""
    if fields[0].startswith("@"):
        marker, fields = fields[0], fields[1:]
    if len(fields) < 3:
        parsed.skipped.append(number)
        return
    names, key_type, encoded = fields[0], fields[1], fields[2]
    try:
        blob = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        parsed.skipped.append(number)
        return
    key = KnownKey(key_type, blob, number)
    if marker == "@cert-authority":
        parsed.cert_authorities += 1
        return
    if marker == "@revoked":
        parsed.revoked.append(key)
        return
    if marker:
        parsed.skipped.append(number)
        return
    if names.startswith(HASH_MAGIC):
        decoded = _decode_hashed(names)
        if decoded is None:
            parsed.skipped.append(number)
            return
        salt, digest = decoded
        parsed.hashed.setdefault(salt, {}).setdefault(digest, []).append(key)
        return
    patterns = tuple(names.split(","))
    if any(ch in names for ch in "*?!"):
        parsed.patterns.append((patterns, key))
        return
    for name in patterns:
        parsed.plain.setdefault(name, []).append(key)


def _pattern_match(patterns: Iterable[str], name: str) -> bool:
    """OpenSSH `match_hostname`: a negated pattern that matches wins; else any positive match."""
    matched = False
    for pattern in patterns:
        if pattern.startswith("!"):
            if fnmatch.fnmatchcase(name, pattern[1:]):
                return False
        elif fnmatch.fnmatchcase(name, pattern):
            matched = True
    return matched


class KnownHosts:
    """The shared index of one known_hosts file (use `KnownHosts.shared(path)`)."""

    _registry: dict[Path, KnownHosts] = {}
    _registry_lock = threading.Lock()

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._parsed = _Parsed()
        self._stamp: tuple[int, int, int, int] | None = None
        self._load()

    @classmethod
    def shared(cls, path: Path | None) -> KnownHosts:
        """The process-wide index of this file; re-read only when the file changed on disk since the last read."""
        if path is None:
            return cls(None)
        path = path.expanduser()
        with cls._registry_lock:
            index = cls._registry.get(path)
            if index is None:
                index = cls._registry[path] = cls(path)
        index.refresh()
        return index

    def _file_stamp(self) -> tuple[int, int, int, int] | None:
        if self.path is None:
            return None
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns

    def _load(self) -> None:
        stamp = self._file_stamp()
        parsed = _Parsed()
        if stamp is not None and self.path is not None:
            with self.path.open(encoding="utf-8", errors="replace") as fh:
                for number, raw in enumerate(fh, 1):
                    _parse_line(parsed, number, raw)
        self._parsed, self._stamp = parsed, stamp

    def refresh(self) -> None:
        """Re-read the file if another process (or an editor) changed it since it was parsed."""
        if self._file_stamp() != self._stamp:
            with self._lock:
                if self._file_stamp() != self._stamp:
                    self._load()

    @property
    def cert_authorities(self) -> int:
        return self._parsed.cert_authorities

    @property
    def skipped_lines(self) -> list[int]:
        return list(self._parsed.skipped)

    def lookup(self, name: str) -> Lookup:
        parsed = self._parsed
        memo = parsed.memo.get(name)
        if memo is not None:
            return memo
        keys = list(parsed.plain.get(name, ()))
        for salt, digests in parsed.hashed.items():
            keys.extend(digests.get(hash_name(name, salt), ()))
        for patterns, key in parsed.patterns:
            if _pattern_match(patterns, name):
                keys.append(key)
        result = Lookup(tuple(keys), tuple(parsed.revoked))
        parsed.memo[name] = result
        return result

    def append(self, name: str, key_type: str, encoded: str) -> bool:
        """Add `name key_type base64` (accept-new, `keys scan --accept`). False if the name already has a key: a
        known key is never replaced or joined by another, and a concurrent writer that got there first wins."""
        if self.path is None:
            raise ValueError("no known_hosts file configured")
        blob = base64.b64decode(encoded)
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a+", encoding="utf-8") as fh:
                fcntl.flock(fh, fcntl.LOCK_EX)
                try:
                    if self._file_stamp() != self._stamp:
                        self._load()  # another process wrote: see its lines before deciding
                    if self.lookup(name).known:
                        return False
                    fh.seek(0, os.SEEK_END)
                    if fh.tell() > 0:
                        fh.seek(fh.tell() - 1)
                        needs_newline = fh.read(1) != "\n"
                        fh.seek(0, os.SEEK_END)
                        if needs_newline:
                            fh.write("\n")
                    fh.write(f"{name} {key_type} {encoded}\n")
                    fh.flush()
                    key = KnownKey(key_type, blob, -1)
                    self._parsed.plain.setdefault(name, []).append(key)
                    self._parsed.memo.pop(name, None)
                    self._stamp = self._file_stamp()
                    return True
                finally:
                    fcntl.flock(fh, fcntl.LOCK_UN)
