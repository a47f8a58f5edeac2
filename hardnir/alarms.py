"""Deadlines for every connection of the process, fired by one thread.

Each SSH connection arms two deadlines (the connect phase, then each command): when one passes, its action closes
the transport, which ends any wait inside paramiko. A `threading.Timer` per deadline meant two thread start-ups
per host, each taking the GIL from the workers; here one daemon thread sleeps until the earliest deadline. A
cancelled alarm lets go of its action at once and leaves the heap when its time comes (cancelling is O(1)); an
action that raises is logged and does not stop the thread.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)


class Alarm:
    """One armed deadline; `cancel()` before it passes and its action never runs."""

    __slots__ = ("action", "cancelled")

    def __init__(self, action: Callable[[], None]) -> None:
        self.action: Callable[[], None] | None = action
        self.cancelled = False

    def cancel(self) -> None:
        """Never run; the action (and the transport it holds) is let go now, not when the deadline passes."""
        self.cancelled = True
        self.action = None


class AlarmClock:
    """A heap of (deadline, alarm), served by one daemon thread started on the first `arm`."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Alarm]] = []
        self._order = itertools.count()  # ties on the deadline never compare two Alarms
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None

    def arm(self, delay: float, action: Callable[[], None]) -> Alarm:
        """Run `action` in the alarm thread once `delay` seconds have passed, unless cancelled first."""
        alarm = Alarm(action)
        with self._wake:
            heapq.heappush(self._heap, (time.monotonic() + delay, next(self._order), alarm))
            if self._thread is None:
                self._thread = threading.Thread(target=self._serve, name="hardnir-alarms", daemon=True)
                self._thread.start()
            elif self._heap[0][2] is alarm:  # the new alarm is the earliest: the thread must wake sooner
                self._wake.notify()
        return alarm

    def pending(self) -> int:
        """Alarms armed and not yet due or cancelled (for tests and diagnostics)."""
        with self._wake:
            return sum(1 for _, _, alarm in self._heap if not alarm.cancelled)

    def _serve(self) -> None:
        while True:
            with self._wake:
                while not self._heap or self._heap[0][0] > time.monotonic():
                    self._wake.wait(self._heap[0][0] - time.monotonic() if self._heap else None)
                    while self._heap and self._heap[0][2].cancelled:
                        heapq.heappop(self._heap)
                _, _, alarm = heapq.heappop(self._heap)
            action = alarm.action
            if alarm.cancelled or action is None:
                continue
            try:
                action()
            except Exception:  # an action must not take the clock down with it
                log.exception("alarm action failed")


CLOCK = AlarmClock()


def arm(delay: float, action: Callable[[], None]) -> Alarm:
    """Run `action` after `delay` seconds in the process's alarm thread (see `AlarmClock.arm`)."""
    return CLOCK.arm(delay, action)
