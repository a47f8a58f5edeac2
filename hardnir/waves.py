"""Remediation waves as data: how hosts are cut into waves, and the record of each wave kept in ``run.json``.

``run.json`` ``waves`` is a list with one object per wave::

    {"wave": 1, "of": 3, "hosts": ["a", "b"], "ran": true, "failed_hosts": ["b"], "failed_pct": 50.0,
     "stop_reason": ""}

A wave that did not run (the run stopped after an earlier wave failed too much) has ``ran: false``,
``failed_pct: null`` and the ``stop_reason``. :func:`wave_note` is the one-line text shown in terminals.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TypedDict


class WaveRecord(TypedDict):
    wave: int
    of: int
    hosts: list[str]
    ran: bool
    failed_hosts: list[str]
    failed_pct: float | None
    stop_reason: str


def plan_waves(names: Sequence[str], wave_size: int | None) -> list[list[str]]:
    """``names`` cut every ``wave_size`` hosts (one wave when unset or not positive)."""
    size = wave_size if wave_size and wave_size > 0 else max(len(names), 1)
    return [list(names[i:i + size]) for i in range(0, len(names), size)]


def ran_wave(number: int, total: int, hosts: Sequence[str], failed: Sequence[str]) -> WaveRecord:
    """The record of a wave that ran."""
    percent = 100.0 * len(failed) / len(hosts) if hosts else 0.0
    return WaveRecord(wave=number, of=total, hosts=list(hosts), ran=True, failed_hosts=list(failed),
                      failed_pct=percent, stop_reason="")


def skipped_wave(number: int, total: int, hosts: Sequence[str], reason: str) -> WaveRecord:
    """The record of a wave that did not run, and why."""
    return WaveRecord(wave=number, of=total, hosts=list(hosts), ran=False, failed_hosts=[], failed_pct=None,
                      stop_reason=reason)


def wave_note(record: Mapping[str, object]) -> str:
    """``wave 1/3: 2 host(s), 1 failed (50%)`` for a wave that ran, else its stop reason."""
    hosts = record.get("hosts")
    failed = record.get("failed_hosts")
    count = len(hosts) if isinstance(hosts, list) else 0
    if not record.get("ran"):
        return str(record.get("stop_reason") or "not run")
    pct = record.get("failed_pct")
    pct_text = f"{pct:.0f}%" if isinstance(pct, int | float) else "?"
    return (f"wave {record.get('wave')}/{record.get('of')}: {count} host(s), "
            f"{len(failed) if isinstance(failed, list) else 0} failed ({pct_text})")


def wave_records(meta: Mapping[str, object]) -> list[Mapping[str, object]]:
    """The wave records of a run's metadata; a run without them (audit, rollback, older runs) is one wave of its
    ``hosts`` that ran."""
    waves = meta.get("waves")
    if isinstance(waves, list) and waves and all(isinstance(w, Mapping) for w in waves):
        return list(waves)
    hosts = meta.get("hosts")
    names = [str(h) for h in hosts] if isinstance(hosts, list) else []
    return [ran_wave(1, 1, names, [])] if names else []
