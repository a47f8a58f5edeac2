"""Ctrl-C while a LocalCluster starts (`hardnir.dask_runner._sigint_deferred`): noted, not raised, and kept from
the threads and processes started meanwhile. A real LocalCluster interrupted this way: tests/integration/test_dask.py.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest

from hardnir.dask_runner import _sigint_deferred


@pytest.fixture
def terminal_sigint() -> Iterator[None]:
    """SIGINT raising KeyboardInterrupt, as in a program started from a terminal (a test run in the background may
    inherit it ignored)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _blocked(tid: int) -> bool:
    with open(f"/proc/{os.getpid()}/task/{tid}/status") as status:
        mask = next(line for line in status if line.startswith("SigBlk:")).split()[1]
    return bool(int(mask, 16) & (1 << (signal.SIGINT - 1)))


@pytest.mark.usefixtures("terminal_sigint")
def test_ctrl_c_is_noted_not_raised_and_the_handler_is_back_after() -> None:
    with _sigint_deferred() as pressed:
        signal.pthread_kill(threading.get_ident(), signal.SIGINT)  # to this thread, which blocks it: it waits
        assert not pressed.is_set()
        os.kill(os.getpid(), signal.SIGINT)  # to the process: another thread may take it, the handler notes it
    assert pressed.is_set()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert not signal.pthread_sigmask(signal.SIG_BLOCK, []) & {signal.SIGINT}
    with pytest.raises(KeyboardInterrupt):
        os.kill(os.getpid(), signal.SIGINT)
        signal.pthread_sigmask(signal.SIG_BLOCK, [])  # a call that runs pending handlers


@pytest.mark.usefixtures("terminal_sigint")
def test_threads_and_processes_started_meanwhile_keep_sigint_blocked() -> None:
    """The worker processes a LocalCluster spawns (from threads it starts) must not die of a terminal's Ctrl-C."""
    seen: list[bool] = []
    with _sigint_deferred() as pressed:
        thread = threading.Thread(target=lambda: seen.append(_blocked(threading.get_native_id())))
        thread.start()
        thread.join()
        child = subprocess.run([sys.executable, "-c", "import signal; print(signal.SIGINT in "
                                "signal.pthread_sigmask(signal.SIG_BLOCK, []))"],
                               capture_output=True, text=True, check=True)
    assert seen == [True] and child.stdout.strip() == "True" and not pressed.is_set()
    assert not _blocked(threading.get_native_id())


def test_an_ignored_sigint_stays_ignored() -> None:
    """A run started with SIGINT ignored (a background job) keeps it so; nothing is noted."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with _sigint_deferred() as pressed:
            assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
            os.kill(os.getpid(), signal.SIGINT)
        assert not pressed.is_set() and signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)
