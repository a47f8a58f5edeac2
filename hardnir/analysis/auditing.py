"""For auditors: the row that decides each host x control, the data dictionary, and CSV exports."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Final

import pandas as pd

from hardnir.schema import COLUMNS
from hardnir.store.csvfile import csv_column

#: What each result column means (design.md, "Result rows"), for data dictionaries next to CSV exports.
COLUMN_DESCRIPTIONS: Final[Mapping[str, str]] = {
    "run_id": "one id per runbook invocation",
    "runbook": "audit, remediate, rollback, ...",
    "host": "inventory name of the host",
    "control": "control id (stable; waivers refer to it)",
    "phase": "check (before), fix, verify (re-check after the fix), rollback",
    "status": (
        "check/verify: pass, fail, not_applicable, error, waived; fix: fixed, would_fix (dry run), unchanged, "
        "fix_failed, blocked (refused by a safety guard), error; rollback: restored, unchanged, rollback_failed"
    ),
    "severity": "low, medium, high, critical",
    "changed": "whether this row changed the host (true/false)",
    "expected": "short human-readable expected value",
    "observed": "short human-readable observed value",
    "message": "one line saying why",
    "evidence": "the raw facts behind the verdict (JSON text, size-capped)",
    "started_at": "when the step started, ISO 8601 UTC",
    "duration_s": "seconds from that start to when the row was recorded",
    "host_key": "SSH host key fingerprint of the host (extra column)",
    "platform": "the host's platform from os-release: coreos, flatcar, fcos, another ID, or empty if unread (extra)",
    "platform_version": "os-release VERSION_ID of the host (extra column)",
    "waiver_reason": "reason of the waiver that matched this row (waived, or failing on an expired waiver), or empty",
    "waiver_approver": "approver of that waiver, if the waiver file names one",
    "waiver_expires": "expiry date of that waiver (ISO 8601), empty if it never expires",
}

_KEY: Final[list[str]] = ["run_id", "host", "control"]


def final_rows(df: pd.DataFrame) -> pd.DataFrame:
    """The full result row (every column) that decides each (run_id, host, control): verify, else check.

    Same choice as :func:`hardnir.results.final_status` for audit and remediate runs, but keeping expected,
    observed, message and evidence, so findings can be shown with the facts behind them. Rows of other
    phases are ignored. Sorted by run_id, host, control.
    """
    rows = df[df["phase"].isin(["check", "verify"])]
    rank = (rows["phase"] == "verify").astype("int64").to_numpy()
    ordered = rows.assign(_rank=rank).sort_values("_rank", kind="stable")
    last = ordered.drop_duplicates(_KEY, keep="last").drop(columns="_rank")
    keys = last[_KEY].astype(object)
    return last.loc[keys.sort_values(_KEY, kind="stable").index].reset_index(drop=True)


def data_dictionary(columns: Iterable[str]) -> pd.DataFrame:
    """One row per column: column, meaning (from :data:`COLUMN_DESCRIPTIONS`, ``extra column`` otherwise)."""
    names = list(columns)
    return pd.DataFrame(
        {"column": names, "meaning": [COLUMN_DESCRIPTIONS.get(c, "extra column") for c in names]}
    )


def auditor_csv(frame: pd.DataFrame) -> bytes:
    """``frame`` (result columns first, in order) as UTF-8 CSV in the ``results.csv`` format.

    Timestamps ISO 8601 UTC with ``Z``, booleans ``true``/``false``, formula-like text cells prefixed with
    ``'`` (:func:`hardnir.results.neutralise_formula`). ValueError if a result column is missing or out of
    order, so an export can never silently drop or reorder the contract columns.
    """
    if list(frame.columns[: len(COLUMNS)]) != list(COLUMNS):
        raise ValueError("the frame must start with the result columns, in order: " + ", ".join(COLUMNS))
    text = pd.DataFrame({col: csv_column(frame[col]) for col in frame.columns}, columns=list(frame.columns))
    return text.to_csv(index=False, lineterminator="\n").encode("utf-8")


def pretty_evidence(evidence: str, limit: int = 1500) -> str:
    """Evidence JSON indented for reading (raw text if it is not JSON), cut at ``limit`` characters."""
    try:
        text = json.dumps(json.loads(evidence), indent=2, sort_keys=True, ensure_ascii=False)
    except ValueError:
        text = evidence
    return text if len(text) <= limit else text[:limit] + " ..."
