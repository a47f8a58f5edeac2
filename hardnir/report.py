"""Plain-text reports over result frames: compliance summary, fix outcomes and drift, for terminals and logs.

Tables are aligned with spaces only (no extra dependency); numbers are right-aligned. Every cell goes
through :func:`hardnir.rows.neutralise_controls`, so a frame from anywhere cannot put escape sequences on
a terminal.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Final

import pandas as pd

from hardnir.drift import CHANGES
from hardnir.rollups import compliance, final_status
from hardnir.rows import neutralise_controls
from hardnir.schema import CHECK_STATUSES, FIX_STATUSES, ROLLBACK_STATUSES

#: Column headers of the status counts, in display order.
_STATUS_HEADERS: Final[tuple[tuple[str, str], ...]] = (
    ("pass", "pass"),
    ("fail", "fail"),
    ("waived", "waived"),
    ("not_applicable", "n/a"),
    ("error", "error"),
)


def format_table(headers: Sequence[str], rows: Sequence[Sequence[object]], numeric: Sequence[bool]) -> str:
    """Align ``rows`` under ``headers`` with two spaces between columns; numeric columns are right-aligned."""
    cells = [[neutralise_controls(str(h)) for h in headers]]
    cells += [[neutralise_controls(_cell(v)) for v in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = []
    for row in cells:
        parts = [c.rjust(w) if num else c.ljust(w) for c, w, num in zip(row, widths, numeric, strict=True)]
        lines.append("  ".join(parts).rstrip())
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def grouped_fixes(items: Sequence[tuple[str, str, str]], shown: int = 5) -> list[str]:
    """(label, host, fix) items -> one line per distinct (label, fix), naming its first `shown` hosts."""
    hosts: dict[tuple[str, str], list[str]] = {}
    for label, host, fix in items:
        hosts.setdefault((label, fix), []).append(host)
    lines = []
    for (label, fix), names in hosts.items():
        more = f" and {len(names) - shown} more" if len(names) > shown else ""
        lines.append(neutralise_controls(f"{label} on {', '.join(names[:shown])}{more}: {fix}"))
    return lines


def _cell(value: object) -> str:
    """Display text of one value: ``-`` for missing values."""
    if value is None or value is pd.NA or value is pd.NaT:
        return "-"
    if isinstance(value, float) and math.isnan(value):
        return "-"
    return str(value)


def _pct(value: object) -> str:
    """A compliance percentage as ``87.5%``, or ``-`` when nothing applied."""
    if not isinstance(value, int | float) or math.isnan(value):
        return "-"
    return f"{value:.1f}%"


def status_counts(df: pd.DataFrame) -> dict[str, int]:
    """How many host x control pairs end each run in each check status (all statuses present, zeros too)."""
    counts = final_status(df)["status"].astype(object).value_counts()
    return {status: int(counts.get(status, 0)) for status in CHECK_STATUSES}


def phase_counts(df: pd.DataFrame, phase: str) -> dict[str, int]:
    """How many rows of ``phase`` (``fix`` or ``rollback``) carry each of that phase's statuses."""
    statuses = FIX_STATUSES if phase == "fix" else ROLLBACK_STATUSES
    counts = df.loc[df["phase"] == phase, "status"].astype(object).value_counts()
    return {status: int(counts.get(status, 0)) for status in statuses}


def _control_table(by_control: pd.DataFrame) -> str:
    """The per-control compliance table."""
    headers = ["control", "severity", *(label for _, label in _STATUS_HEADERS), "compliance"]
    rows = [
        [r["control"], r["severity"], *(int(r[s]) for s, _ in _STATUS_HEADERS), _pct(r["compliance_pct"])]
        for r in by_control.to_dict("records")
    ]
    return format_table(headers, rows, [False, False, *[True] * len(_STATUS_HEADERS), True])


def _host_table(by_host: pd.DataFrame, platforms: Mapping[str, str] | None = None) -> str:
    """The per-host compliance table (with a platform column when the rows carry one)."""
    lead = ["host", "platform"] if platforms else ["host"]
    headers = [*lead, *(label for _, label in _STATUS_HEADERS), "compliance"]
    rows = [
        [r["host"], *([platforms.get(str(r["host"]), "")] if platforms else []),
         *(int(r[s]) for s, _ in _STATUS_HEADERS), _pct(r["compliance_pct"])]
        for r in by_host.to_dict("records")
    ]
    return format_table(headers, rows, [*[False] * len(lead), *[True] * len(_STATUS_HEADERS), True])


def _platforms(df: pd.DataFrame) -> dict[str, str]:
    """Host -> platform (hardnir.platforms), "unread" for hosts never probed; empty without the column."""
    if "platform" not in df.columns:
        return {}
    per_host = df.groupby(df["host"].astype(object), sort=False)["platform"].agg(
        lambda values: next((str(v) for v in values if isinstance(v, str) and v), "unread"))
    return {str(host): str(platform) for host, platform in per_host.items()}


def _outcome_table(df: pd.DataFrame, phase: str, statuses: Sequence[str]) -> str:
    """Per-control counts of ``phase`` row statuses, with a total line."""
    rows_of_phase = df[df["phase"] == phase]
    table = pd.crosstab(rows_of_phase["control"].astype(object), rows_of_phase["status"].astype(object))
    table = table.reindex(columns=list(statuses), fill_value=0).sort_index()
    rows: list[list[object]] = [[control, *map(int, counts)] for control, counts in table.iterrows()]
    rows.append(["total", *(int(v) for v in table.sum(axis=0))])
    return format_table(["control", *statuses], rows, [False, *[True] * len(statuses)])


def _header(df: pd.DataFrame) -> str:
    """One line per run (id, runbook, row count) and the overall final-status counts."""
    runs = df.groupby(df["run_id"].astype(object), sort=False).agg(
        runbook=("runbook", "first"), rows=("run_id", "size"), hosts=("host", "nunique")
    )
    lines = [f"run {rid} ({r.runbook}): {r.rows} rows, {r.hosts} hosts" for rid, r in runs.iterrows()]
    counts = status_counts(df)
    lines.append("final status: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    platforms = _platforms(df)
    if platforms:  # hosts per platform
        per_platform = pd.Series(list(platforms.values())).value_counts()
        lines.append("platforms: " + ", ".join(f"{p} {n}" for p, n in per_platform.items()))
    return "\n".join(neutralise_controls(line) for line in lines)


def summary_table(df: pd.DataFrame) -> str:
    """The text summary of a result frame: per-control and per-host compliance, plus fix/rollback outcomes.

    Fix outcomes (fixed, would_fix, unchanged, fix_failed, blocked, error) appear when the frame holds fix
    rows (remediate runs), rollback outcomes when it holds rollback rows. Counts add up over every run in
    ``df``, so pass one run for a fleet snapshot.
    """
    if df.empty:
        return "no results"
    tables = compliance(df)
    sections = [
        _header(df),
        "Per control\n" + _control_table(tables["by_control"]),
        "Per host\n" + _host_table(tables["by_host"], _platforms(df)),
    ]
    if (df["phase"] == "fix").any():
        sections.append("Fix outcomes\n" + _outcome_table(df, "fix", FIX_STATUSES))
    if (df["phase"] == "rollback").any():
        sections.append("Rollback outcomes\n" + _outcome_table(df, "rollback", ROLLBACK_STATUSES))
    return "\n\n".join(sections)


def drift_table(d: pd.DataFrame) -> str:
    """The text form of a :func:`hardnir.drift.drift` frame, with a count per kind of change."""
    if d.empty:
        return "no changes"
    headers = ["change", "host", "control", "severity", "old", "new"]
    columns = ["change", "host", "control", "severity", "old_status", "new_status"]
    rows = d[columns].astype(object).to_numpy().tolist()
    counts = d["change"].astype(object).value_counts()
    totals = ", ".join(f"{change} {int(counts[change])}" for change in CHANGES if change in counts)
    return format_table(headers, rows, [False] * len(headers)) + f"\n\n{totals}"
