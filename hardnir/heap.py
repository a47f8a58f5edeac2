"""Giving the C heap's freed memory back to the operating system after a run, for long-lived API processes.

A 10,000-host run allocates and frees hundreds of MB of rows, facts and frames. glibc keeps freed chunks in its
arenas for reuse; between runs of a notebook or a service that memory stays resident, and its fragmentation adds
to the process's RSS from run to run. (Six consecutive 10,000-host audits through the API grew +5.3% before this
trim and the run store's move to pyarrow's system pool, :data:`hardnir.store.arrowfile.POOL`; +4.1% over ten
after both. The two were measured together, not apart.) `malloc_trim(0)` returns every whole free page of every
arena. Elsewhere than glibc this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import gc
from collections.abc import Callable


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's `malloc_trim`, or None on a C library without it (musl, macOS)."""
    name = ctypes.util.find_library("c")
    if not name:
        return None
    try:
        trim: Callable[[int], int] = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):
        return None
    return trim


def give_back_freed_memory() -> bool:
    """Collect garbage cycles, then return the C heap's free pages to the OS. True when the heap was trimmed."""
    gc.collect()
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True
