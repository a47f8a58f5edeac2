"""Roll-ups of result frames: the final status of each host x control, run start times and compliance counts."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

import pandas as pd

from hardnir.frames import RUN_STARTED_AT, SEVERITY_DTYPE, STATUS_DTYPE


def run_starts(df: pd.DataFrame) -> pd.Series:
    """Start time per ``run_id``: ``run_started_at`` when the frame has it, else the run's earliest row."""
    stamps = df["started_at"]
    if RUN_STARTED_AT in df.columns:
        stamps = df[RUN_STARTED_AT].fillna(stamps)
    return stamps.groupby(df["run_id"].astype(object), sort=False).min()


_FINAL_COLUMNS: Final[list[str]] = ["run_id", "host", "control", "severity", "status"]
_KEY: Final[list[str]] = ["run_id", "host", "control"]


def _empty_final() -> pd.DataFrame:
    """An empty :func:`final_status` frame with its dtypes."""
    return pd.DataFrame(
        {
            "run_id": pd.Series([], dtype="string"),
            "host": pd.Series([], dtype="string"),
            "control": pd.Series([], dtype="string"),
            "severity": pd.Series([], dtype=SEVERITY_DTYPE),
            "status": pd.Series([], dtype=STATUS_DTYPE),
        }
    )


def _observed_final(df: pd.DataFrame) -> pd.DataFrame:
    """Per key, the (last) verify row if there is one, else the (last) check row."""
    rows = df[df["phase"].isin(["check", "verify"])]
    rank = (rows["phase"] == "verify").astype(int)
    ordered = rows.assign(_rank=rank.to_numpy()).sort_values("_rank", kind="stable")
    return ordered.drop_duplicates(_KEY, keep="last")[_FINAL_COLUMNS]


def _rollback_only(df: pd.DataFrame, observed: pd.DataFrame) -> pd.DataFrame:
    """Rollback-phase rows of rollback runs for keys that have no check/verify row in their run."""
    rows = df[(df["phase"] == "rollback") & (df["runbook"] == "rollback")]
    rows = rows.drop_duplicates(_KEY, keep="last")
    seen = pd.MultiIndex.from_frame(observed[_KEY].astype(object))
    mine = pd.MultiIndex.from_frame(rows[_KEY].astype(object))
    return rows[~mine.isin(seen)]


def _states_by_run(df: pd.DataFrame, starts: Mapping[object, object]) -> pd.DataFrame:
    """Per (run, host, control) of non-rollback runs: its start, ``check`` status and final status."""
    rows = df[(df["runbook"] != "rollback") & df["phase"].isin(["check", "verify"])]
    checks = rows[rows["phase"] == "check"].drop_duplicates(_KEY, keep="last")
    finals = _observed_final(rows)
    states = pd.merge(
        finals[[*_KEY, "status"]].astype(object).rename(columns={"status": "final"}),
        checks[[*_KEY, "status"]].astype(object).rename(columns={"status": "check"}),
        on=_KEY,
        how="left",
    )
    states["start"] = states["run_id"].map(starts)
    return states


def _rolled_back_states(df: pd.DataFrame, rollbacks: pd.DataFrame) -> pd.DataFrame:
    """Host state after rollback-only rows, taken from the latest earlier non-rollback run in ``df``.

    ``restored`` means the host is back to that run's ``check`` state; ``unchanged`` means it kept that run's
    final (verify, else check) state; a failed rollback leaves the host in an unknown state (``error``). Keys
    with nothing earlier to go by are left out.
    """
    starts = run_starts(df).to_dict()
    rb = rollbacks[[*_KEY, "severity", "status"]].astype(object)
    rb["start"] = rb["run_id"].map(starts)
    states = _states_by_run(df, starts).drop(columns="run_id")
    pairs = rb.merge(states, on=["host", "control"], how="inner", suffixes=("", "_prev"))
    pairs = pairs[pairs["start_prev"] < pairs["start"]]
    latest = pairs.sort_values("start_prev", kind="stable").drop_duplicates(_KEY, keep="last")
    rb = rb.merge(latest[[*_KEY, "check", "final"]], on=_KEY, how="left")
    failed = ~rb["status"].isin(["restored", "unchanged"])
    rb["state"] = rb["check"].where(rb["status"] == "restored", rb["final"]).where(~failed, "error")
    return rb[rb["state"].notna()].drop(columns="status").rename(columns={"state": "status"})[_FINAL_COLUMNS]


def final_status(df: pd.DataFrame) -> pd.DataFrame:
    """Per (run_id, host, control), the status describing the host after the run.

    The verify row if present, else the check row; fix and rollback rows are ignored. For a rollback run that
    has only rollback rows, the state is looked up in the latest earlier run of the frame (see
    :func:`_rolled_back_states`). Columns: run_id, host, control, severity, status.
    """
    if df.empty:
        return _empty_final()
    observed = _observed_final(df)
    rollbacks = _rollback_only(df, observed)
    parts = [observed]
    if not rollbacks.empty:
        parts.append(_rolled_back_states(df, rollbacks))
    parts = [p.astype(object) for p in parts if not p.empty]
    if not parts:
        return _empty_final()
    combined = pd.concat(parts, ignore_index=True)
    result = pd.DataFrame(
        {
            "run_id": combined["run_id"].astype("string"),
            "host": combined["host"].astype("string"),
            "control": combined["control"].astype("string"),
            "severity": combined["severity"].astype(SEVERITY_DTYPE),
            "status": combined["status"].astype(STATUS_DTYPE),
        }
    )
    return result.sort_values(_KEY, kind="stable").reset_index(drop=True)


_COUNTED: Final[tuple[str, ...]] = ("pass", "fail", "waived", "not_applicable", "error")


def _counts(final: pd.DataFrame, by: str) -> pd.DataFrame:
    """Counts of each final status per value of column ``by``, with ``compliance_pct``."""
    keys = final[by].astype(object)
    table = pd.crosstab(keys, final["status"].astype(object)) if len(final) else pd.DataFrame()
    table = table.reindex(columns=list(_COUNTED), fill_value=0).astype("int64")
    table.index.name = by
    table.columns.name = None
    applicable = table["pass"] + table["fail"] + table["waived"]
    good = table["pass"] + table["waived"]
    table["compliance_pct"] = (100.0 * good / applicable.where(applicable > 0)).astype("float64")
    out = table.reset_index()
    out[by] = out[by].astype("string")
    return out


def compliance(df: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Final-status counts per control (``by_control``, with its highest severity) and per host (``by_host``).

    ``compliance_pct`` = 100 * (pass + waived) / (pass + fail + waived), NaN when nothing applies. Counts are
    taken over every run in ``df``; pass one run (or the latest) for a fleet snapshot.
    """
    final = final_status(df)
    by_control = _counts(final, "control")
    severity = final.groupby(final["control"].astype(object), observed=True)["severity"].max()
    sev = by_control["control"].astype(object).map(severity).astype(SEVERITY_DTYPE)
    by_control.insert(1, "severity", sev)
    by_host = _counts(final, "host")
    return {
        "by_control": by_control.sort_values("control", kind="stable").reset_index(drop=True),
        "by_host": by_host.sort_values("host", kind="stable").reset_index(drop=True),
    }
