"""A server that keeps the TCP connection but never answers the exec request (paramiko waits for that answer
without a timeout): `run` must still end, a little after the command's deadline, with a one-line SSHError. Before
the watchdog in `HardnirConnection.run` this blocked its thread, and the whole run (a Dask shard), forever."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import paramiko
import pytest

from hardnir.ssh import KILL_GRACE_S, STALL_GRACE_S, HardnirConnection, SSHError


class Stalling(paramiko.ServerInterface):
    """Logs anybody in, opens sessions, then sits on the exec request (in the server's transport thread)."""

    def __init__(self, release: threading.Event) -> None:
        self.release = release
        self.exec_requests = 0

    def get_allowed_auths(self, username: str) -> str:
        return "password"

    def check_auth_password(self, username: str, password: str) -> int:
        return paramiko.AUTH_SUCCESSFUL

    def check_channel_request(self, kind: str, chanid: int) -> int:
        return paramiko.OPEN_SUCCEEDED

    def check_channel_exec_request(self, channel: paramiko.Channel, command: bytes) -> bool:
        self.exec_requests += 1
        self.release.wait(60)
        return False


@pytest.fixture
def stalling_server() -> Iterator[tuple[int, Stalling]]:
    release = threading.Event()
    server = Stalling(release)
    key = paramiko.ECDSAKey.generate()
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    transports: list[paramiko.Transport] = []

    def serve() -> None:
        conn, _ = listener.accept()
        transport = paramiko.Transport(conn)
        transport.add_server_key(key)
        transports.append(transport)
        transport.start_server(server=server)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield int(listener.getsockname()[1]), server
    release.set()
    for transport in transports:
        transport.close()
    listener.close()


def test_a_server_that_never_answers_the_exec_request_ends_the_command(
        stalling_server: tuple[int, Stalling], tmp_path: Path) -> None:
    port, server = stalling_server
    conn = HardnirConnection()
    conn.open("127.0.0.1", "core", "pw", port, None, {
        "known_hosts": str(tmp_path / "known_hosts"), "host_key_policy": "accept-new", "connect_timeout": 5})
    budget = 0.5
    started = time.monotonic()
    with pytest.raises(SSHError, match=r"^\[127\.0\.0\.1\]:\d+: no answer from the server within 0\.5 s "
                                       r"\(command_timeout\); connection closed$"):
        conn.run("true", timeout=budget)
    took = time.monotonic() - started
    limit = budget + KILL_GRACE_S + 5 + STALL_GRACE_S
    assert server.exec_requests == 1
    assert limit - 0.5 < took < limit + 5  # the watchdog, not the server, ended it
    with pytest.raises(SSHError, match="connection is closed"):
        conn.run("true")
    conn.close()
