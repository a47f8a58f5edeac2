"""Process-wide locks by key: a `serial` control fixes one host per key (an etcd cluster) at a time."""

from __future__ import annotations

import threading

_serial_locks: dict[str, threading.Lock] = {}
_serial_guard = threading.Lock()


def serial_lock(key: str) -> threading.Lock:
    with _serial_guard:
        return _serial_locks.setdefault(key, threading.Lock())
