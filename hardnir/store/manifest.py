"""``SHA256SUMS``: the digest of every file of a run directory, written last, in ``sha256sum`` format.

Each line is ``<hex digest>  <file name>``, so ``sha256sum -c SHA256SUMS`` checks a run too. Only regular files
directly in the run directory are listed (hidden temp files and the manifest itself are not).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Final

MANIFEST: Final[str] = "SHA256SUMS"


class ManifestError(ValueError):
    """A run directory has no manifest, or the manifest is malformed (one-line message naming the path)."""


@contextlib.contextmanager
def atomic_file(path: Path) -> Iterator[IO[bytes]]:
    """A binary file that becomes ``path`` only when the block ends without error (temp file in the same
    directory, fsync, atomic rename); on error the temp file is removed and ``path`` is untouched."""
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temp file in the same directory and an atomic rename."""
    with atomic_file(path) as handle:
        handle.write(data)


def file_digest(path: Path) -> str:
    """The SHA-256 of a file, as hex."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _listed_files(run_dir: Path) -> list[Path]:
    """The files a manifest covers: regular, not hidden, not the manifest itself; sorted by name."""
    return sorted(
        p for p in run_dir.iterdir() if p.is_file() and not p.name.startswith(".") and p.name != MANIFEST
    )


def write_manifest(run_dir: Path) -> Path:
    """Write ``SHA256SUMS`` over the run directory's files (call it after every other file is written)."""
    run_dir = Path(run_dir)
    lines = "".join(f"{file_digest(p)}  {p.name}\n" for p in _listed_files(run_dir))
    path = run_dir / MANIFEST
    atomic_write(path, lines.encode("utf-8"))
    return path


@dataclass
class ManifestCheck:
    """The outcome of :func:`verify_manifest`: which listed files match, differ or are gone; which are unlisted."""

    ok: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unlisted: list[str] = field(default_factory=list)

    @property
    def intact(self) -> bool:
        """Every listed file is there with its recorded digest (unlisted files do not count against it)."""
        return not self.changed and not self.missing


def read_manifest(run_dir: Path) -> dict[str, str]:
    """``{file name: digest}`` from a run's ``SHA256SUMS``; ManifestError if absent or malformed."""
    path = Path(run_dir) / MANIFEST
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ManifestError(f"no {MANIFEST} in {Path(run_dir)}") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ManifestError(f"cannot read {path}: {exc}") from exc
    entries: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        digest, sep, name = line.partition("  ")
        if not sep or len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest) or "/" in name:
            raise ManifestError(f"{path}: line {number} is not '<sha256>  <file name>'")
        entries[name] = digest
    return entries


def verify_manifest(run_dir: Path) -> ManifestCheck:
    """Compare a run directory's files with its ``SHA256SUMS``."""
    run_dir = Path(run_dir)
    entries = read_manifest(run_dir)
    check = ManifestCheck()
    for name, digest in entries.items():
        path = run_dir / name
        if not path.is_file():
            check.missing.append(name)
        elif file_digest(path) != digest:
            check.changed.append(name)
        else:
            check.ok.append(name)
    check.unlisted = [p.name for p in _listed_files(run_dir) if p.name not in entries]
    return check
