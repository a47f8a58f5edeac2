"""Remediation review: check, fix and verify side by side, fix outcomes and their reasons, what needs a human."""

from __future__ import annotations

from typing import Final

import pandas as pd

from hardnir.schema import FIX_STATUSES, PHASES

#: Statuses (any phase) that a person has to look at after a remediation.
NEEDS_HUMAN: Final[tuple[str, ...]] = ("fix_failed", "blocked", "error", "rollback_failed")


_KEY: Final[list[str]] = ["run_id", "host", "control"]


def before_after(df: pd.DataFrame) -> pd.DataFrame:
    """Per (run_id, host, control) of a remediation: check, fix and verify status side by side.

    Columns: run_id, host, control, severity, check, fix, verify (text, ``""`` when the phase has no row),
    changed (the fix changed the host), fix_message. Sorted by run_id, host, control.
    """
    rows = df[df["phase"].isin(["check", "fix", "verify"])]
    rows = rows.drop_duplicates([*_KEY, "phase"], keep="last")
    base = rows[[*_KEY, "phase", "status"]].astype(object)
    wide = base.pivot(index=_KEY, columns="phase", values="status").reindex(columns=["check", "fix", "verify"])
    wide = wide.astype(object).fillna("")
    wide.columns.name = None
    fixes = rows[rows["phase"] == "fix"].set_index(_KEY)
    severity = rows.drop_duplicates(_KEY, keep="last").set_index(_KEY)["severity"]
    out = wide.reset_index()
    index = pd.MultiIndex.from_frame(out[_KEY].astype(object))
    fix_index = pd.MultiIndex.from_frame(fixes.index.to_frame().astype(object))
    changed = pd.Series(fixes["changed"].to_numpy(), index=fix_index).reindex(index)
    message = pd.Series(fixes["message"].astype(object).to_numpy(), index=fix_index).reindex(index)
    sev_index = pd.MultiIndex.from_frame(severity.index.to_frame().astype(object))
    out.insert(3, "severity", pd.Series(severity.to_numpy(), index=sev_index).reindex(index).to_numpy())
    out["severity"] = out["severity"].astype(df["severity"].dtype)
    out["changed"] = changed.fillna(False).astype(bool).to_numpy()
    out["fix_message"] = message.fillna("").astype(object).to_numpy()
    for col in _KEY:
        out[col] = out[col].astype("string")
    return out.sort_values(_KEY, kind="stable").reset_index(drop=True)


def transitions(table: pd.DataFrame) -> pd.DataFrame:
    """How many host x control pairs went from each check status to each verify status, per control.

    Takes :func:`before_after`. Columns: control, check, verify, pairs; most frequent first per control.
    """
    counts = table.groupby([table["control"].astype(object), "check", "verify"], sort=True).size()
    out = counts.rename("pairs").reset_index()
    out["control"] = out["control"].astype("string")
    return out.sort_values(["control", "pairs"], ascending=[True, False], kind="stable").reset_index(drop=True)


def fix_outcomes(df: pd.DataFrame) -> pd.DataFrame:
    """Per control, how many fix rows ended in each fix status (all statuses as columns, zeros too)."""
    rows = df[df["phase"] == "fix"]
    table = pd.crosstab(rows["control"].astype(object), rows["status"].astype(object)) if len(rows) else None
    if table is None:
        table = pd.DataFrame(index=pd.Index([], name="control"))
    table = table.reindex(columns=list(FIX_STATUSES), fill_value=0).fillna(0).astype("int64")
    table.index.name, table.columns.name = "control", None
    out = table.sort_index().reset_index()
    out["control"] = out["control"].astype("string")
    return out


def fix_reasons(df: pd.DataFrame) -> pd.DataFrame:
    """Fix rows grouped by (status, control, message): how many hosts and which. The "why" of each outcome."""
    rows = df[df["phase"] == "fix"]
    parts = pd.DataFrame(
        {
            "status": rows["status"].astype(object),
            "control": rows["control"].astype(object),
            "message": rows["message"].astype(object),
            "host": rows["host"].astype(object),
        }
    )
    grouped = parts.groupby(["status", "control", "message"], sort=True)["host"]
    out = grouped.agg(hosts="nunique", host_names=lambda h: ", ".join(sorted(set(h)))).reset_index()
    order = {s: i for i, s in enumerate(FIX_STATUSES)}
    out["_rank"] = out["status"].map(order)
    return out.sort_values(["_rank", "control", "hosts"], ascending=[True, True, False], kind="stable").drop(
        columns="_rank"
    ).reset_index(drop=True)


def needs_human(df: pd.DataFrame) -> pd.DataFrame:
    """Host x control problems a person must look at: any row with a :data:`NEEDS_HUMAN` status.

    One line per (run_id, host, control): the status and message of its first such row in phase order (check,
    fix, verify, rollback; for an unreachable host that is the check's connection error, not the fix's "not
    fixed" echo) and every phase that had one. Columns: run_id, host, control, severity, status, phases,
    message; sorted by run_id, host, control.
    """
    rows = df[df["status"].astype(object).isin(NEEDS_HUMAN)]
    parts = pd.DataFrame(
        {
            "run_id": rows["run_id"].astype(object),
            "host": rows["host"].astype(object),
            "control": rows["control"].astype(object),
            "severity": rows["severity"].astype(object),
            "status": rows["status"].astype(object),
            "phase": rows["phase"].astype(object),
            "message": rows["message"].astype(object),
            "_rank": rows["phase"].astype(object).map({p: i for i, p in enumerate(PHASES)}),
        }
    ).sort_values([*_KEY, "_rank"], kind="stable")
    grouped = parts.groupby(_KEY, sort=True)
    out = grouped.agg(
        severity=("severity", "first"),
        status=("status", "first"),
        phases=("phase", lambda p: ",".join(dict.fromkeys(p))),
        message=("message", "first"),
    ).reset_index()
    out = out.reindex(columns=[*_KEY, "severity", "status", "phases", "message"])
    out["severity"] = out["severity"].astype(df["severity"].dtype)
    for col in _KEY:
        out[col] = out[col].astype("string")
    return out.reset_index(drop=True)
