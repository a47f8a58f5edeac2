"""The connection phase is bounded by connect_timeout: a tarpit (TCP but no banner) fails once, fast, with a clear
message and nothing from paramiko on the terminal; a server that closes at once is retried (sshd restarting).
All servers here listen on 127.0.0.1."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import paramiko.packet
import pytest

from hardnir import api
from hardnir.ssh import Endpoint, HostKeyVerifier, SSHError, open_transport


class Server:
    """Accepts connections on loopback and either keeps them silent, closes them, or sends a banner only."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.accepted = 0
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = int(self.sock.getsockname()[1])
        self.held: list[socket.socket] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            if self.mode == "close":
                conn.close()
                continue
            if self.mode == "banner-only":
                conn.sendall(b"SSH-2.0-OpenSSH_9.2\r\n")
            self.held.append(conn)

    def close(self) -> None:
        self.sock.close()
        for conn in self.held:
            conn.close()


@pytest.fixture
def server(request: pytest.FixtureRequest) -> Iterator[Server]:
    srv = Server(request.param)
    yield srv
    srv.close()


def connect(port: int, timeout: float) -> tuple[str, float]:
    started = time.monotonic()
    with pytest.raises(SSHError) as err:
        open_transport(Endpoint("127.0.0.1", port, "core", password="x"), HostKeyVerifier(None, "strict"),
                       timeout=timeout)
    return str(err.value), time.monotonic() - started


@pytest.mark.parametrize("server", ["silent"], indirect=True)
def test_a_tarpit_is_one_banner_timeout_not_retried(server: Server, capfd: pytest.CaptureFixture[str]) -> None:
    message, took = connect(server.port, 2)
    assert "no SSH banner within 2 s" in message
    assert took < 4.5 and server.accepted == 1  # 2 s + grace, with slack for a loaded machine
    out, err = capfd.readouterr()
    assert out == "" and err == ""  # paramiko's "Exception (client): Error reading SSH protocol banner" is gone


@pytest.mark.parametrize("server", ["banner-only"], indirect=True)
def test_a_stalled_key_exchange_is_bounded(server: Server, capfd: pytest.CaptureFixture[str],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    timers: list[object] = []

    class CountedTimer(threading.Timer):
        def start(self) -> None:
            timers.append(self)
            super().start()

    monkeypatch.setattr(paramiko.packet.threading, "Timer", CountedTimer)
    message, took = connect(server.port, 2)
    assert "SSH handshake did not finish within 2 s (connect_timeout)" in message
    assert took < 4.5
    assert timers == []  # our watchdog bounds the key exchange: paramiko's Timer thread per handshake is not started
    assert capfd.readouterr().err == ""


@pytest.mark.parametrize("server", ["close"], indirect=True)
def test_a_server_closing_before_its_banner_is_retried_within_the_bound(server: Server) -> None:
    message, took = connect(server.port, 5)
    assert "closed the connection before its SSH banner" in message and "tried 3 time(s)" in message
    assert server.accepted == 3 and took < 7.5


@pytest.mark.parametrize("server", ["silent"], indirect=True)
def test_an_audit_of_a_tarpit_reports_it_and_logs_paramiko_to_the_run(server: Server, tmp_path: Path,
                                                                       capfd: pytest.CaptureFixture[str]) -> None:
    inv = tmp_path / "inv"
    inv.mkdir()
    (inv / "hosts.yaml").write_text(f"tarpit: {{hostname: 127.0.0.1, port: {server.port}}}\n")
    (inv / "defaults.yaml").write_text("username: core\npassword: x\nconnection_options:\n  hardnir:\n    extras:\n"
                                       f"      connect_timeout: 2\n      known_hosts: {tmp_path / 'kh'}\n")
    started = time.monotonic()
    outcome = api.execute("audit", inv, out=tmp_path / "run", controls="core-rkt")
    assert time.monotonic() - started < 10
    assert "no SSH banner within 2 s" in outcome.rows[0]["message"]
    assert outcome.exit_code == api.EXIT_UNREACHABLE
    assert "banner" in (tmp_path / "run" / "run.log").read_text()
    assert "Traceback" not in capfd.readouterr().err
