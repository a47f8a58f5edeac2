"""`give_back_freed_memory` returns the C heap's free pages to the OS; the API's audit calls it after each run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from hardnir import api, heap

# 300 MB in 64 kB blocks (below glibc's mmap threshold: they live in the heap), a small block allocated after them
# so the heap's top stays in use, then all the big blocks freed: glibc keeps the hole resident until trimmed.
HOLE = """
import sys
from hardnir.heap import give_back_freed_memory

def rss_mb():
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * 4096 / 2**20

blocks = [b"x" * (64 * 1024 - 64) for _ in range(4800)]
pin = [bytes(1000) for _ in range(200)]
del blocks
before = rss_mb()
trimmed = give_back_freed_memory()
print(trimmed, round(before - rss_mb()))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux") or heap._malloc_trim() is None, reason="glibc only")
def test_freed_heap_memory_goes_back_to_the_os() -> None:
    out = subprocess.run([sys.executable, "-c", HOLE], capture_output=True, text=True, check=True).stdout.split()
    assert out[0] == "True"
    assert int(out[1]) > 100  # MB returned (about 160 here); without the trim the hole stays resident (0)


def test_the_api_frees_the_rows_and_trims_after_each_run(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    calls: list[int] = []

    class Outcome:
        rows: list[dict[str, Any]] = [{"host": "a"}]

        def frame(self) -> str:
            assert not calls and self.rows  # the frame is read first, then the rows go and the heap is trimmed
            return "frame"

    outcome = Outcome()
    monkeypatch.setattr(api, "execute", lambda *a, **k: outcome)
    monkeypatch.setattr(api, "give_back_freed_memory", lambda: calls.append(len(outcome.rows)) or True)
    assert api.audit(tmp_path) == "frame"
    assert calls == [0]
