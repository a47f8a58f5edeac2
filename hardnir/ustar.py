"""A small, bounds-checked reader of the tar archives GNU tar writes (gnu and ustar headers, long names).

The probe's output is one such archive per host; at thousands of hosts, `tarfile`'s general machinery cost more CPU
than everything else the client does per host. This reader slices headers straight out of the buffer, checks each
header's checksum, and never raises on hostile bytes: it stops at the first header that does not add up.
"""

from __future__ import annotations

import zlib
from typing import NamedTuple

BLOCK = 512
REGULAR, HARDLINK, SYMLINK, DIRECTORY = "file", "hardlink", "symlink", "dir"
_KINDS = {b"0": REGULAR, b"\0": REGULAR, b"7": REGULAR, b"1": HARDLINK, b"2": SYMLINK, b"5": DIRECTORY}


class Member(NamedTuple):
    """One archive member; ownership and mode are decoded from its header only when asked for. (A named tuple:
    a probe archive has some 50 members, and a frozen dataclass's constructor cost more than reading one.)"""

    name: str
    kind: str  # file, hardlink, symlink, dir, other
    linkname: str
    data: bytes
    header: bytes

    @property
    def mode(self) -> int:
        return _safe_num(self.header[100:108])

    @property
    def uid(self) -> int:
        return _safe_num(self.header[108:116])

    @property
    def gid(self) -> int:
        return _safe_num(self.header[116:124])

    @property
    def uname(self) -> str:
        return _str(self.header[265:297])

    @property
    def gname(self) -> str:
        return _str(self.header[297:329])


def _str(field: bytes) -> str:
    return field.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")


def _num(field: bytes) -> int:
    if field[:1] and field[0] & 0x80:  # GNU base-256 for values too big for octal
        return int.from_bytes(field[1:], "big")
    text = field.split(b"\0", 1)[0].strip(b" ")
    return int(text, 8) if text else 0


def _safe_num(field: bytes) -> int:
    try:
        return _num(field)
    except ValueError:
        return 0


def _byte_sum(data: bytes) -> int:
    """The sum of the bytes of a 512-byte header, in C: Adler-32's first half (started at 0) is the byte sum
    modulo 65521, exact for 256 bytes (at most 256 * 255 = 65280). `sum(header)` cost 4-8 us per header."""
    return (zlib.adler32(data[:256], 0) & 0xFFFF) + (zlib.adler32(data[256:], 0) & 0xFFFF)


def _checksum_ok(header: bytes) -> bool:
    try:
        stored = _num(header[148:156])
    except ValueError:
        return False
    return stored == _byte_sum(header) - sum(header[148:156]) + 8 * 32


def read(buf: bytes) -> dict[str, Member]:
    """Members by name (trailing `/` removed; the first of a duplicated name wins). Stops, without raising, at
    the end of the archive or at the first header that is not a valid tar header."""
    members: dict[str, Member] = {}
    offset, long_name, long_link, size_limit = 0, "", "", len(buf)
    while offset + BLOCK <= size_limit:
        header = buf[offset:offset + BLOCK]
        if not _checksum_ok(header):
            break  # also the all-zero end-of-archive block
        try:
            size = _num(header[124:136])
        except ValueError:
            break
        start = offset + BLOCK
        end = start + size
        if end > size_limit:
            break
        data = buf[start:end]
        offset = start + -(-size // BLOCK) * BLOCK
        flag = header[156:157]
        if flag == b"L":
            long_name = _str(data)
            continue
        if flag == b"K":
            long_link = _str(data)
            continue
        name = long_name or _str(header[0:100])
        if not long_name and header[257:263] == b"ustar\0" and header[345:346] != b"\0":  # POSIX name prefix
            name = f"{_str(header[345:500])}/{name}"
        kind = _KINDS.get(flag, "other")
        linkname = long_link or (_str(header[157:257]) if kind in (HARDLINK, SYMLINK) else "")
        long_name = long_link = ""
        if kind == HARDLINK:  # GNU tar stores the content once: resolve to the member it links to
            target = members.get(linkname.rstrip("/"))
            data = target.data if target is not None else b""
        members.setdefault(name.rstrip("/"), Member(name, kind, linkname, data, header))
    return members
