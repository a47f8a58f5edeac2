"""What changed between runs: drift between two snapshots, flapping controls and time to fix.

All functions take result frames as produced by :func:`hardnir.results.load_runs` (or ``read_run``); runs are
ordered by ``run_started_at`` when present, else by their earliest row (:func:`hardnir.results.run_starts`).
"""

from __future__ import annotations

from typing import Final

import numpy as np
import pandas as pd

from hardnir.frames import SEVERITY_DTYPE, TIMESTAMP_DTYPE
from hardnir.rollups import final_status, run_starts
from hardnir.schema import CHECK_STATUSES

CHANGES: Final[tuple[str, ...]] = ("regressed", "fixed", "changed", "new", "gone")
CHANGE_DTYPE: Final = pd.CategoricalDtype(list(CHANGES), ordered=True)
FINAL_STATUS_DTYPE: Final = pd.CategoricalDtype(list(CHECK_STATUSES))
GOOD: Final[tuple[str, ...]] = ("pass", "waived", "not_applicable")
BAD: Final[tuple[str, ...]] = ("fail", "error")
_HC: Final[list[str]] = ["host", "control"]

DRIFT_COLUMNS: Final[tuple[str, ...]] = ("host", "control", "severity", "old_status", "new_status", "change")


def latest_final(df: pd.DataFrame) -> pd.DataFrame:
    """:func:`final_status` of the most recently started run in ``df`` (empty if ``df`` is)."""
    final = final_status(df)
    if df.empty:
        return final
    latest = run_starts(df).idxmax()
    return final[final["run_id"] == latest].reset_index(drop=True)


def _classify(old: pd.Series, new: pd.Series) -> np.ndarray:
    """The change label per row, or "" where the status did not change."""
    conditions = [
        old.isna(),
        new.isna(),
        old.isin(GOOD) & new.isin(BAD),
        old.isin(BAD) & new.isin(("pass", "waived")),
        old != new,
    ]
    return np.select(conditions, ["new", "gone", "regressed", "fixed", "changed"], default="")


def _empty_drift() -> pd.DataFrame:
    """An empty :func:`drift` frame with its dtypes."""
    return pd.DataFrame(
        {
            "host": pd.Series([], dtype="string"),
            "control": pd.Series([], dtype="string"),
            "severity": pd.Series([], dtype=SEVERITY_DTYPE),
            "old_status": pd.Series([], dtype=FINAL_STATUS_DTYPE),
            "new_status": pd.Series([], dtype=FINAL_STATUS_DTYPE),
            "change": pd.Series([], dtype=CHANGE_DTYPE),
        }
    )


def drift(old: pd.DataFrame, new: pd.DataFrame) -> pd.DataFrame:
    """Per host x control, how the latest run of ``new`` differs from the latest run of ``old``.

    ``change`` is ``regressed`` (pass/waived/not_applicable -> fail/error), ``fixed`` (fail/error ->
    pass/waived), ``new`` (not seen before), ``gone`` (not seen now) or ``changed`` (any other status change).
    Unchanged pairs are left out. Sorted by change (regressions first), then severity (highest first), host,
    control.
    """
    before, after = latest_final(old), latest_final(new)
    merged = pd.merge(
        before[[*_HC, "severity", "status"]].astype(object),
        after[[*_HC, "severity", "status"]].astype(object),
        on=_HC,
        how="outer",
        suffixes=("_old", "_new"),
    )
    if merged.empty:
        return _empty_drift()
    change = _classify(merged["status_old"], merged["status_new"])
    result = pd.DataFrame(
        {
            "host": merged["host"].astype("string"),
            "control": merged["control"].astype("string"),
            "severity": merged["severity_new"].fillna(merged["severity_old"]).astype(SEVERITY_DTYPE),
            "old_status": merged["status_old"].astype(FINAL_STATUS_DTYPE),
            "new_status": merged["status_new"].astype(FINAL_STATUS_DTYPE),
            "change": pd.Series(change, dtype=object),
        }
    )
    result = result[result["change"] != ""]
    if result.empty:
        return _empty_drift()
    result["change"] = result["change"].astype(CHANGE_DTYPE)
    return _sort_findings(result, first="change")


def _sort_findings(frame: pd.DataFrame, first: str) -> pd.DataFrame:
    """Sort by ``first``, then severity (highest first), then host and control."""
    keys = pd.DataFrame(
        {
            "a": frame[first].cat.codes,
            "b": -frame["severity"].cat.codes,
            "c": frame["host"].astype(object),
            "d": frame["control"].astype(object),
        }
    )
    order = keys.sort_values(["a", "b", "c", "d"], kind="stable").index
    return frame.loc[order].reset_index(drop=True)


def _start_of(run_ids: pd.Series, runs: pd.DataFrame) -> pd.Series:
    """The start time of each run in ``run_ids`` (UTC), aligned with ``run_ids``."""
    mapped = run_ids.astype(object).map(run_starts(runs).to_dict())
    return pd.to_datetime(mapped, utc=True).astype(TIMESTAMP_DTYPE)


def _ordered_final(runs: pd.DataFrame) -> pd.DataFrame:
    """Final statuses of every run with the run's start time, in run order."""
    final = final_status(runs)
    final["run_start"] = _start_of(final["run_id"], runs)
    return final.sort_values(["run_start", "run_id"], kind="stable").reset_index(drop=True)


def flapping(runs: pd.DataFrame) -> pd.DataFrame:
    """Host x control pairs whose final status went pass <-> fail at least twice across runs.

    Only pass and fail results count (an error or not_applicable run in between neither breaks nor makes a
    transition). Columns: host, control, severity (latest), transitions, observations (pass/fail runs),
    last_status; most transitions first.
    """
    final = _ordered_final(runs)
    seen = final[final["status"].isin(["pass", "fail"])].copy()
    status = seen["status"].astype(object)
    previous = status.groupby([seen["host"], seen["control"]], observed=True).shift()
    seen["flip"] = (previous.notna() & (status != previous)).astype("int64")
    grouped = seen.groupby(_HC, observed=True, sort=True)
    summary = grouped.agg(
        severity=("severity", "last"),
        transitions=("flip", "sum"),
        observations=("flip", "size"),
        last_status=("status", "last"),
    ).reset_index()
    summary = summary[summary["transitions"] >= 2]
    result = pd.DataFrame(
        {
            "host": summary["host"].astype("string"),
            "control": summary["control"].astype("string"),
            "severity": summary["severity"].astype(SEVERITY_DTYPE),
            "transitions": summary["transitions"].astype("int64"),
            "observations": summary["observations"].astype("int64"),
            "last_status": summary["last_status"].astype(object).astype(FINAL_STATUS_DTYPE),
        }
    )
    return result.sort_values(
        ["transitions", "host", "control"], ascending=[False, True, True], kind="stable"
    ).reset_index(drop=True)


def _observations(runs: pd.DataFrame) -> pd.DataFrame:
    """Every check/verify pass or fail row, in time order (run start, row start, check before verify)."""
    rows = runs[runs["phase"].isin(["check", "verify"]) & runs["status"].isin(["pass", "fail"])]
    obs = pd.DataFrame(
        {
            "run_id": rows["run_id"].astype(object),
            "host": rows["host"].astype(object),
            "control": rows["control"].astype(object),
            "severity": rows["severity"],
            "status": rows["status"].astype(object),
            "at": rows["started_at"],
            "run_start": _start_of(rows["run_id"], runs),
            "phase_rank": (rows["phase"] == "verify").astype("int64"),
        }
    )
    order = ["run_start", "run_id", "at", "phase_rank"]
    return obs.sort_values(order, kind="stable").reset_index(drop=True)


def time_to_fix(runs: pd.DataFrame) -> pd.DataFrame:
    """Per host x control that ever failed: when it was first seen failing and first seen passing after that.

    Observations are check and verify rows (so a remediate run that fixes a control counts from its check to
    its verify). Columns: host, control, severity, first_failed_at, failed_run_id, fixed_at, fixed_run_id,
    time_to_fix (NaT and <NA> while still unfixed). Sorted by host, control.
    """
    obs = _observations(runs)
    failing = obs["status"] == "fail"
    # For a pass row, "any fail so far in its group" is exactly "failed before it".
    failed_so_far = failing.astype("int64").groupby([obs["host"], obs["control"]]).cummax() == 1
    fails = obs[failing].drop_duplicates(_HC, keep="first")
    fixes = obs[(obs["status"] == "pass") & failed_so_far].drop_duplicates(_HC, keep="first")
    merged = pd.merge(
        fails[[*_HC, "at", "run_id"]],
        fixes[[*_HC, "at", "run_id"]],
        on=_HC,
        how="left",
        suffixes=("_failed", "_fixed"),
    )
    severity = obs.drop_duplicates(_HC, keep="last").set_index(_HC)["severity"]
    keys = pd.MultiIndex.from_frame(merged[_HC])
    result = pd.DataFrame(
        {
            "host": merged["host"].astype("string"),
            "control": merged["control"].astype("string"),
            "severity": pd.Series(severity.reindex(keys).to_numpy(), dtype=SEVERITY_DTYPE),
            "first_failed_at": merged["at_failed"].astype(TIMESTAMP_DTYPE),
            "failed_run_id": merged["run_id_failed"].astype("string"),
            "fixed_at": merged["at_fixed"].astype(TIMESTAMP_DTYPE),
            "fixed_run_id": merged["run_id_fixed"].astype("string"),
        }
    )
    result["time_to_fix"] = result["fixed_at"] - result["first_failed_at"]
    return result.sort_values(["host", "control"], kind="stable").reset_index(drop=True)
