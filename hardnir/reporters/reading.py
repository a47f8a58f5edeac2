"""Which result columns each output of a run reads, and reading only those columns from a run directory.

The terminal table and the ``-q`` line never show ``evidence`` (JSON per row: most of a run's bytes) nor
``expected`` nor most extra columns, so after a run they read only what they show from ``results.parquet``. The
JUnit, SARIF, JSON and HTML reports show evidence (the JSON report every column), so they read the whole run.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from pathlib import Path
from typing import Final

import pandas as pd
import pyarrow.parquet as pq

from hardnir.frames import coerce
from hardnir.schema import COLUMN_KINDS, COLUMNS
from hardnir.store.rundir import RESULTS_PARQUET, read_run

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


def read_columns(run_dir: Path, columns: Collection[str]) -> pd.DataFrame:
    """The typed frame :func:`hardnir.store.read_run` gives, with only those of ``columns`` the run has (in its
    order), which alone are read from ``results.parquet``.

    A run with only ``results.csv`` is read whole, and so is a Parquet file whose columns cannot be read and typed
    in part: by :func:`read_run`, which then says what is wrong with it.
    """
    parquet = Path(run_dir) / RESULTS_PARQUET
    if not parquet.is_file():
        return _whole(run_dir, columns)
    try:
        names = [name for name in pq.read_schema(parquet).names if name in columns]
        frame = pd.read_parquet(parquet, engine="pyarrow", columns=names)
        # Columns of the contract left unread get valid stand-ins for the typing, then are dropped.
        stand_ins = {name: False if COLUMN_KINDS[name] == "bool" else None for name in COLUMNS if name not in names}
        typed = coerce(frame.assign(**stand_ins))
    except Exception:
        return _whole(run_dir, columns)
    return typed[[name for name in typed.columns if name in columns]]


def _whole(run_dir: Path, columns: Collection[str]) -> pd.DataFrame:
    """:func:`read_run`, then only ``columns``."""
    whole = read_run(run_dir)
    return whole[[name for name in whole.columns if name in columns]]
