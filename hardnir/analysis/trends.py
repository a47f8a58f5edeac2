"""Several runs over time: the compliance trend, run order, and drift between consecutive runs."""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping

import pandas as pd

from hardnir.analysis.scores import _APPLICABLE, SEVERITY_WEIGHTS, weighted_score
from hardnir.drift import drift
from hardnir.rollups import final_status, run_starts
from hardnir.schema import CHECK_STATUSES


def compliance_trend(runs: pd.DataFrame, weights: Mapping[str, float] = SEVERITY_WEIGHTS) -> pd.DataFrame:
    """One row per run, in start order: run_id, runbook, run_started_at, hosts, status counts,
    compliance_pct (as :func:`hardnir.results.compliance`) and weighted_score_pct (:func:`weighted_score`)."""
    final = final_status(runs)
    starts = run_starts(runs)
    runbooks = runs.groupby(runs["run_id"].astype(object), sort=False)["runbook"].first().astype(object)
    records: list[dict[str, object]] = []
    for run_id, group in final.groupby(final["run_id"].astype(object), sort=False):
        counts = group["status"].astype(object).value_counts()
        record: dict[str, object] = {
            "run_id": run_id,
            "runbook": runbooks.get(run_id, ""),
            "run_started_at": starts.get(run_id),
            "hosts": int(group["host"].nunique()),
        }
        record.update({s: int(counts.get(s, 0)) for s in CHECK_STATUSES})
        applicable = sum(int(counts.get(s, 0)) for s in _APPLICABLE)
        good = int(counts.get("pass", 0)) + int(counts.get("waived", 0))
        record["compliance_pct"] = 100.0 * good / applicable if applicable else math.nan
        record["weighted_score_pct"] = weighted_score(group, weights)
        records.append(record)
    columns = ["run_id", "runbook", "run_started_at", "hosts", *CHECK_STATUSES, "compliance_pct",
               "weighted_score_pct"]
    out = pd.DataFrame.from_records(records, columns=columns)
    out["run_started_at"] = pd.to_datetime(out["run_started_at"], utc=True)
    out = out.sort_values(["run_started_at", "run_id"], kind="stable").reset_index(drop=True)
    out["run_id"] = out["run_id"].astype("string")
    for col in ("compliance_pct", "weighted_score_pct"):
        out[col] = out[col].astype("float64")
    return out


def run_order(runs: pd.DataFrame) -> list[str]:
    """The run ids of ``runs`` in start order (ties by id)."""
    starts = run_starts(runs)
    pairs = sorted(((pd.Timestamp(v), str(k)) for k, v in starts.items()), key=lambda p: (p[0], p[1]))
    return [run_id for _, run_id in pairs]


def drift_between(runs: pd.DataFrame, old_run_id: str, new_run_id: str) -> pd.DataFrame:
    """:func:`hardnir.drift.drift` from run ``old_run_id`` to run ``new_run_id`` of a multi-run frame.

    Each side gets every run that started up to its own run, not just its own rows: the state after a rollback
    run is derived from the runs before it (:func:`hardnir.results.final_status`), so a rollback run alone would
    look like every host x control had gone.
    """
    starts = run_starts(runs)
    start = runs["run_id"].astype(object).map(starts.to_dict())
    return drift(runs[start <= starts[old_run_id]], runs[start <= starts[new_run_id]])


def consecutive_drift(runs: pd.DataFrame) -> pd.DataFrame:
    """:func:`drift_between` each run and the next one (in start order), stacked.

    Columns: from_run_id, to_run_id, to_runbook, then drift's columns.
    """
    order = run_order(runs)
    ids = runs["run_id"].astype(object)
    frames = []
    for old, new in itertools.pairwise(order):
        runbook = str(runs.loc[ids == new, "runbook"].iloc[0])
        frames.append(drift_between(runs, old, new).assign(from_run_id=old, to_run_id=new, to_runbook=runbook))
    if not frames:
        empty = drift(runs.iloc[0:0], runs.iloc[0:0])
        frames.append(empty.assign(from_run_id="", to_run_id="", to_runbook=""))
    out = pd.concat(frames, ignore_index=True)
    first = ["from_run_id", "to_run_id", "to_runbook"]
    out = out[[*first, *[c for c in out.columns if c not in first]]]
    for col in first:
        out[col] = out[col].astype("string")
    return out
