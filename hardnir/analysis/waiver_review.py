"""Waivers in results and in the waiver file: what was waived (from the ``waiver_*`` columns) and the register."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import date
from typing import Protocol

import pandas as pd


def _days_left(expires: date | None, today: date) -> float:
    """Days until ``expires`` (negative once past), NaN without an expiry."""
    return float((expires - today).days) if expires is not None else math.nan


class WaiverLike(Protocol):
    """The fields of :class:`hardnir.waivers.Waiver` used here."""

    @property
    def control(self) -> str: ...
    @property
    def hosts(self) -> tuple[str, ...]: ...
    @property
    def groups(self) -> tuple[str, ...]: ...
    @property
    def all_hosts(self) -> bool: ...
    @property
    def reason(self) -> str: ...
    @property
    def approver(self) -> str | None: ...
    @property
    def expires(self) -> date | None: ...


def _expiry(text: object) -> date | None:
    """A ``waiver_expires`` cell (ISO date text, empty when the waiver has no expiry) as a date."""
    if not isinstance(text, str) or not text:
        return None
    return date.fromisoformat(text)


def waiver_findings(rows: pd.DataFrame, today: date) -> pd.DataFrame:
    """Rows a waiver matched, from the ``waiver_reason``, ``waiver_approver`` and ``waiver_expires`` columns.

    ``state`` is ``waived`` (an active waiver applied) or ``expired`` (only an expired waiver matched, so the row
    still fails). Columns: host, control, severity, status, state, reason, approver, expires, days_left; soonest
    expiry first (no expiry last). Rows without the columns (runs made before them) give an empty table.
    """
    if "waiver_reason" in rows.columns:
        chosen = rows[rows["waiver_reason"].fillna("").astype(str) != ""]
    else:
        chosen = rows.iloc[0:0]
    expires = [_expiry(v) for v in (chosen["waiver_expires"] if len(chosen) else [])]
    approvers = [str(a) or None for a in (chosen["waiver_approver"].fillna("") if len(chosen) else [])]
    table = pd.DataFrame(
        {
            "host": chosen["host"].astype("string").to_numpy(),
            "control": chosen["control"].astype("string").to_numpy(),
            "severity": chosen["severity"].to_numpy(),
            "status": chosen["status"].astype(object).to_numpy(),
            "state": ["waived" if s == "waived" else "expired" for s in chosen["status"].astype(object)],
            "reason": pd.Series(chosen["waiver_reason"].astype(object).to_numpy() if len(chosen) else [],
                                dtype=object),
            "approver": pd.Series(approvers, dtype=object),
            "expires": pd.Series(expires, dtype=object),
            "days_left": pd.Series([_days_left(e, today) for e in expires], dtype="float64"),
        }
    )
    table["severity"] = table["severity"].astype(rows["severity"].dtype)
    return table.sort_values(["days_left", "host", "control"], kind="stable", na_position="last").reset_index(
        drop=True
    )


def waiver_register(waivers: Sequence[WaiverLike], today: date, soon_days: int = 30) -> pd.DataFrame:
    """The waiver file as a table: control, scope, reason, approver, expires, days_left, state.

    ``state`` is ``expired`` (past its expiry day), ``expiring`` (within ``soon_days``), ``active`` or
    ``permanent`` (no expiry). Soonest expiry first.
    """

    def scope(w: WaiverLike) -> str:
        if w.all_hosts:
            return "all hosts"
        parts = [f"hosts: {', '.join(w.hosts)}"] if w.hosts else []
        parts += [f"groups: {', '.join(w.groups)}"] if w.groups else []
        return "; ".join(parts)

    def state(w: WaiverLike) -> str:
        if w.expires is None:
            return "permanent"
        left = (w.expires - today).days
        return "expired" if left < 0 else "expiring" if left <= soon_days else "active"

    table = pd.DataFrame(
        {
            "control": [w.control for w in waivers],
            "scope": [scope(w) for w in waivers],
            "reason": [w.reason for w in waivers],
            "approver": [w.approver for w in waivers],
            "expires": [w.expires for w in waivers],
            "days_left": pd.Series([_days_left(w.expires, today) for w in waivers], dtype="float64"),
            "state": [state(w) for w in waivers],
        }
    )
    return table.sort_values(["days_left", "control"], kind="stable", na_position="last").reset_index(drop=True)
