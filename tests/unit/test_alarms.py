"""The one alarm thread that replaces a threading.Timer per connection stage (hardnir.alarms)."""

from __future__ import annotations

import gc
import threading
import time
import weakref

from hardnir.alarms import AlarmClock


def test_alarms_fire_in_deadline_order_not_arming_order() -> None:
    clock = AlarmClock()
    fired: list[str] = []
    done = threading.Event()
    clock.arm(0.4, lambda: (fired.append("late"), done.set()))
    clock.arm(0.1, lambda: fired.append("early"))  # armed second, due first: the sleeping thread must wake
    assert done.wait(5)
    assert fired == ["early", "late"]


def test_a_cancelled_alarm_never_fires_and_lets_go_of_its_action() -> None:
    clock = AlarmClock()
    fired: list[str] = []

    class Transport:
        def close(self) -> None:
            fired.append("closed")

    transport = Transport()
    ref = weakref.ref(transport)
    alarm = clock.arm(0.2, transport.close)
    alarm.cancel()
    del transport
    gc.collect()
    assert ref() is None  # the heap does not keep the connection alive until the deadline
    assert clock.pending() == 0
    time.sleep(0.4)
    assert fired == []


def test_an_action_that_raises_does_not_stop_the_clock() -> None:
    clock = AlarmClock()
    done = threading.Event()

    def broken() -> None:
        raise RuntimeError("boom")

    clock.arm(0.05, broken)
    clock.arm(0.1, done.set)
    assert done.wait(5)


def test_one_thread_serves_many_alarms() -> None:
    clock = AlarmClock()
    before = threading.active_count()
    count = 200
    fired = threading.Semaphore(0)
    for i in range(count):
        clock.arm(0.05 + i / 10_000, fired.release)
    assert threading.active_count() <= before + 1
    for _ in range(count):
        assert fired.acquire(timeout=5)
