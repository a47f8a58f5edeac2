"""Before a run starts: the run directory is usable, waivers name real hosts and groups, paramiko logs to the run.

A remediation that cannot write its run directory at the end would lose the run.json that `rollback --run` needs,
so the directory is created and proven writable (and new or empty) before any host is touched.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Collection, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hardnir.waivers import Waiver

RUN_LOG = "run.log"


class RunDirError(ValueError):
    """The run directory cannot be used (a usage error)."""


def prepare_run_dir(path: Path) -> Path:
    """Create `path` (with parents) or accept an empty one; prove it writable. RunDirError otherwise."""
    if path.exists() and not path.is_dir():
        raise RunDirError(f"--out {path}: exists and is not a directory")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunDirError(f"--out {path}: cannot create it ({exc.strerror or exc.__class__.__name__})") from None
    if any(path.iterdir()):
        raise RunDirError(f"--out {path}: not empty (give a new or empty directory)")
    probe = path / f".hardnir-write-test-{os.getpid()}"
    try:
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise RunDirError(f"--out {path}: not writable ({exc.strerror or exc.__class__.__name__})") from None
    return path


def unknown_scopes(waivers: Sequence[Waiver], hosts: Collection[str], groups: Collection[str]) -> list[str]:
    """One line per waiver that names a host or group the inventory does not have."""
    lines = []
    for index, waiver in enumerate(waivers):
        missing = [f"host {h!r}" for h in waiver.hosts if h not in hosts]
        missing += [f"group {g!r}" for g in waiver.groups if g not in groups]
        if missing:
            lines.append(f"waivers[{index}] ({waiver.control}): {', '.join(missing)} not in the inventory")
    return lines


SSH_DEBUG_ENV = "HARDNIR_SSH_DEBUG"


@contextlib.contextmanager
def paramiko_to(log_file: Path) -> Iterator[None]:
    """paramiko's records go to the run's log file for the duration, never to the terminal.

    INFO and up by default (connections, authentications, errors: a few records per host). Debug level writes
    about 40 records per host and, through the logging module's locks, costs more client CPU than the SSH work at
    thousands of hosts: ask for it with HARDNIR_SSH_DEBUG=1 when chasing a connection problem.
    """
    debug = os.environ.get(SSH_DEBUG_ENV) == "1"
    logger = logging.getLogger("paramiko")
    handler = logging.FileHandler(log_file, encoding="utf-8", delay=True)
    handler.setLevel(logging.DEBUG if debug else logging.INFO)
    handler.setFormatter(logging.Formatter("%(asctime)s %(threadName)s %(name)s %(levelname)s %(message)s"))
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if debug else logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        handler.close()
