"""Which result columns each output of a run reads (:func:`hardnir.store.read_run` reads only those).

The terminal table and the ``-q`` line never show ``evidence`` (JSON per row: most of a run's bytes) nor
``expected`` nor most extra columns, so after a run they read only what they show from ``results.parquet``. The
JUnit, SARIF, JSON and HTML reports show evidence (the JSON report every column), so they read the whole run.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Final

#: What the one-line summary of ``-q`` reads: the final status of each host x control, the fix and rollback
#: outcomes, the hosts, the run id and runbook.
SUMMARY_COLUMNS: Final[frozenset[str]] = frozenset({"run_id", "runbook", "host", "control", "phase", "status"})
#: What the terminal table reads on top: severities, run start (a rollback's earlier state), the platform column
#: (the per-host table shows it when the run has one) and the findings' observed value and message.
TABLE_COLUMNS: Final[frozenset[str]] = SUMMARY_COLUMNS | {"severity", "started_at", "platform", "observed",
                                                          "message"}
#: The columns each output reads (``summary`` is the ``-q`` line; the others are report formats); None: all.
COLUMNS_READ: Final[Mapping[str, frozenset[str] | None]] = {
    "summary": SUMMARY_COLUMNS,
    "table": TABLE_COLUMNS,
    "junit": None,
    "sarif": None,
    "json": None,
    "html": None,
}


def columns_read(outputs: Iterable[str]) -> frozenset[str] | None:
    """The columns that ``outputs`` (names of :data:`COLUMNS_READ`) read together, or None when one reads all."""
    needed: set[str] = set()
    for name in outputs:
        columns = COLUMNS_READ[name]
        if columns is None:
            return None
        needed |= columns
    return frozenset(needed)
