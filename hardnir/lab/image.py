"""The lab's root filesystem: built once by debootstrap (build-image.sh) and cached by content hash."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from hardnir.lab.common import LabError, cache_dir, last_line, log, mountpoints, require_tools, run

HERE = Path(__file__).resolve().parent
BUILD_SCRIPT = HERE / "build-image.sh"
IMAGE_FILES = HERE / "image"
BUILD_TIMEOUT_S = 1800.0


def image_hash() -> str:
    """Digest of the build script and every image file (path, type, exec bit, content)."""
    digest = hashlib.sha256(b"hardnir-lab-image\0")
    digest.update(BUILD_SCRIPT.read_bytes())
    for path in sorted(IMAGE_FILES.rglob("*")):
        rel = path.relative_to(IMAGE_FILES).as_posix().encode()
        if path.is_symlink():
            digest.update(b"\0l\0" + rel + b"\0" + os.readlink(path).encode())
        elif path.is_dir():
            digest.update(b"\0d\0" + rel)
        else:
            kind = b"x" if os.access(path, os.X_OK) else b"f"
            data = path.read_bytes()
            digest.update(b"\0" + kind + b"\0" + rel + b"\0" + str(len(data)).encode() + b"\0" + data)
    return digest.hexdigest()[:16]


def image_dir(digest: str | None = None) -> Path:
    return cache_dir() / f"image-{digest or image_hash()}"


def ensure_image() -> Path:
    """Return the cached rootfs for the current build script and image files, building it if needed."""
    digest = image_hash()
    rootfs = image_dir(digest) / "rootfs"
    if rootfs.is_dir():
        return rootfs
    cache_dir().mkdir(parents=True, exist_ok=True)
    with _build_lock():
        if rootfs.is_dir():  # built by someone else while we waited
            return rootfs
        _build(digest)
    return rootfs


@dataclass(frozen=True)
class Account:
    uid: int
    gid: int


def accounts(rootfs: Path) -> dict[str, Account]:
    """Users of the image by name, read from its /etc/passwd (no NSS of the machine involved)."""
    result: dict[str, Account] = {}
    for line in (rootfs / "etc/passwd").read_text().splitlines():
        fields = line.split(":")
        if len(fields) >= 4 and fields[2].isdigit() and fields[3].isdigit():
            result[fields[0]] = Account(int(fields[2]), int(fields[3]))
    return result


@contextlib.contextmanager
def _build_lock() -> Iterator[None]:
    with open(cache_dir() / "image.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _build(digest: str) -> None:
    require_tools(("debootstrap", "chroot"))
    _remove_stale_builds()
    final = image_dir(digest)
    tmp = cache_dir() / f".image-{digest}.tmp-{os.getpid()}"
    build_log = cache_dir() / f"build-{digest}.log"
    debs = cache_dir() / "debs"
    debs.mkdir(exist_ok=True)
    log.info("building the lab image %s (debootstrap, about a minute; log: %s)", digest, build_log)
    started = time.monotonic()
    tmp.mkdir()
    try:
        with open(build_log, "w") as out:
            try:
                done = subprocess.run(
                    ["sh", str(BUILD_SCRIPT), str(tmp / "rootfs"), str(IMAGE_FILES), str(debs)],
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    timeout=BUILD_TIMEOUT_S,
                    check=False,
                )
            except subprocess.TimeoutExpired:
                raise LabError(f"image build timed out after {BUILD_TIMEOUT_S:.0f} s; see {build_log}") from None
        if done.returncode != 0:
            raise LabError(
                f"image build failed (rc={done.returncode}): {last_line(build_log.read_text())}; see {build_log}"
            )
        info = {"hash": digest, "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "build_seconds": round(time.monotonic() - started, 1)}
        (tmp / "image.json").write_text(json.dumps(info, indent=2) + "\n")
        os.rename(tmp, final)
    except BaseException:
        _remove_tree(tmp)
        raise
    log.info("image %s built in %.0f s", digest, time.monotonic() - started)


def _remove_stale_builds() -> None:
    """Remove temporary build trees left by builds that died (their pid is gone)."""
    for tmp in cache_dir().glob(".image-*.tmp-*"):
        pid = tmp.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            _remove_tree(tmp)


def _remove_tree(path: Path) -> None:
    """rm -rf that first unmounts anything a dying debootstrap left mounted inside (proc, sys, ...)."""
    if not path.exists():
        return
    prefix = str(path.resolve()) + "/"
    for mountpoint in sorted(mountpoints(), key=len, reverse=True):
        if mountpoint.startswith(prefix):
            run(["umount", "-l", mountpoint], check=False)
    run(["rm", "-rf", "--one-file-system", str(path)], check=False, timeout=600)
