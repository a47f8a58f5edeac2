"""hardnir.live: the proof that nothing listens (run for real with sh and ss), who can connect, and the wording."""

from __future__ import annotations

import socket
import subprocess
import tempfile
from pathlib import Path

from hardnir import live
from hardnir.facts import Holder, ListenFact, LiveListener, SocketFact, Unit


def test_proof_command_fails_while_anything_listens_and_passes_after() -> None:
    with tempfile.TemporaryDirectory(prefix="hardnir-live-") as tmp:
        path = str(Path(tmp) / "api.sock")
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.bind(path)
        server.listen()
        proof = live.unix_listening_command(path)
        held = subprocess.run(["sh", "-c", proof], capture_output=True, text=True, timeout=60)
        server.close()
        closed = subprocess.run(["sh", "-c", proof], capture_output=True, text=True, timeout=60)
    assert held.returncode == 1 and held.stdout.strip() == f"still listening on {path}"
    assert closed.returncode == 0, closed.stdout + closed.stderr


def test_proof_command_also_matches_the_var_run_twin() -> None:
    assert "/run/fleet.sock|/var/run/fleet.sock)" in live.unix_listening_command("/run/fleet.sock")


def test_who_can_connect() -> None:
    holder = (LiveListener("/run/x.sock", (Holder(57, "fleetd", "fleet.service"),)),)
    writable = SocketFact("/run/x.sock", True, "666", "root", "root", True)
    assert live.can_connect(writable, ListenFact("/run/x.sock", True, holder)) is True
    assert live.can_connect(writable, ListenFact("/run/x.sock", True, ())) is False  # a stale file: refused
    assert live.can_connect(writable, ListenFact("/run/x.sock", False)) is True  # not probed: the file decides
    unlinked = SocketFact("/run/x.sock", False)
    assert live.can_connect(unlinked, ListenFact("/run/x.sock", True, holder)) is False  # no path to connect to
    assert live.can_connect(unlinked, ListenFact("/run/x.sock", False)) is None


def test_idle_note_says_both_facts_and_skips_masked_units() -> None:
    active = Unit("fleet.socket", {"ActiveState": ["active"], "UnitFileState": ["static"]}, True)
    enabled = Unit("sshd.service", {"ActiveState": ["inactive"], "UnitFileState": ["enabled"]}, True)
    masked = Unit("docker.socket", {"ActiveState": ["inactive"], "UnitFileState": ["masked"]}, True)
    assert live.idle_note("/run/fleet.sock", active, enabled) == (
        "nothing listens on /run/fleet.sock now, but fleet.socket is active, sshd.service is enabled")
    assert live.idle_note("/run/docker.sock", masked) == ""
