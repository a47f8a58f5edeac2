"""Integration tests run against the lab: real systemd, sshd, users, groups and sudo in systemd-nspawn hosts.

The session fixture `lab` boots the lab once (HARDNIR_TEST_HOSTS hosts, default 20, seed 7, platform mixed: hosts
1-3 are the vanilla Container Linux, Flatcar and Fedora CoreOS hosts; one dead inventory entry) and removes it at
the end. With HARDNIR_TEST_REUSE_LAB=1 it uses the lab that is already up (or brings
one up and leaves it running for the next session). Needs root; skipped otherwise.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from hardnir.lab import LabHost, LabInfo, down, info, up

TEST_SEED = 7
TEST_PLATFORM = "mixed"  # one lab boot covers Container Linux, Flatcar and Fedora CoreOS


def _reuse() -> bool:
    return os.environ.get("HARDNIR_TEST_REUSE_LAB") == "1"


@pytest.fixture(scope="session")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabInfo]:
    if os.geteuid() != 0:
        pytest.skip("the lab needs root (systemd-nspawn, network namespaces, overlay mounts)")
    missing = [tool for tool in ("systemd-nspawn", "ip", "ssh") if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"missing {', '.join(missing)}; run scripts/setup-host.sh")
    hosts = int(os.environ.get("HARDNIR_TEST_HOSTS", "20"))
    with _lab_lock():  # never share the one lab with another run (tests, benchmarks) at the same time
        current = info() if _reuse() else None
        if (current is not None and current.seed == TEST_SEED and len(current.hosts) == hosts
                and current.platform == TEST_PLATFORM
                and current.key_file.exists() and current.known_hosts.exists()):
            yield current
            return
        inventory = (Path(tempfile.gettempdir()) / "hardnir-test-lab-inventory" if _reuse()
                     else tmp_path_factory.mktemp("lab-inventory"))
        lab_info = up(hosts=hosts, seed=TEST_SEED, inventory_dir=inventory, dead_hosts=1, platform=TEST_PLATFORM)
        yield lab_info
        if not _reuse():
            down()


@contextlib.contextmanager
def _lab_lock() -> Iterator[None]:
    """One lab per machine: every user of it (tests, benchmarks) holds this lock while it runs."""
    with open("/var/lock/hardnir-lab.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class SSH:
    """Plain OpenSSH client with the lab key and known_hosts, strict host key checking, no config files."""

    def __init__(self, lab: LabInfo) -> None:
        self.lab = lab

    def __call__(self, host: LabHost, command: str, user: str = "core",
                 timeout: float = 60) -> subprocess.CompletedProcess[str]:
        argv = [
            "ssh", "-F", "/dev/null", "-i", str(self.lab.key_file),
            "-o", f"UserKnownHostsFile={self.lab.known_hosts}", "-o", "GlobalKnownHostsFile=/dev/null",
            "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "-o", "ConnectTimeout=15",
            "-o", "LogLevel=ERROR", f"{user}@{host.address}", command,
        ]
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False,
                              stdin=subprocess.DEVNULL)


@pytest.fixture(scope="session")
def lab_ssh(lab: LabInfo) -> SSH:
    return SSH(lab)
