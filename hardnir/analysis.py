"""Analysis helpers for the notebooks: weighted scores, heatmap matrices, waivers, remediation review, trends.

Pure functions over the result frames of :func:`hardnir.results.read_run` / :func:`hardnir.results.load_runs`
and the ``run.json`` metadata of :func:`hardnir.results.read_meta`. Nothing here talks to hosts, draws or
writes files; the notebooks in ``notebooks/`` do the plotting and the exports.

Timing note: a row's ``duration_s`` counts from the moment its host (or its fix step) started to the moment the
row was made, so durations of rows of one host overlap and must not be summed. :func:`host_timing` works from
start and end instants instead.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Final, Protocol

import pandas as pd

from hardnir.drift import drift
from hardnir.results import csv_column, final_status, run_starts
from hardnir.schema import CHECK_STATUSES, COLUMNS, FIX_STATUSES, PHASES, SEVERITIES

#: Severity weights of the weighted compliance score (each level counts twice the one below).
SEVERITY_WEIGHTS: Final[Mapping[str, float]] = {"low": 1.0, "medium": 2.0, "high": 4.0, "critical": 8.0}

#: Colour of each final (check/verify) status in heatmaps; ``""`` is "no result for this host x control".
STATUS_COLOURS: Final[Mapping[str, str]] = {
    "pass": "#2e7d32",
    "waived": "#1565c0",
    "not_applicable": "#cfd8dc",
    "fail": "#c62828",
    "error": "#212121",
    "": "#ffffff",
}

#: Short cell labels for heatmaps (so the chart does not rely on colour alone).
STATUS_LABELS: Final[Mapping[str, str]] = {
    "pass": "ok",
    "waived": "W",
    "not_applicable": "n/a",
    "fail": "FAIL",
    "error": "ERR",
    "": "",
}

#: Statuses (any phase) that a person has to look at after a remediation.
NEEDS_HUMAN: Final[tuple[str, ...]] = ("fix_failed", "blocked", "error", "rollback_failed")

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
}

_KEY: Final[list[str]] = ["run_id", "host", "control"]
_APPLICABLE: Final[tuple[str, ...]] = ("pass", "fail", "waived")
_WAVE_NOTE_RE: Final = re.compile(r"^wave (\d+)/(\d+): (\d+) host\(s\), (\d+) failed \((\d+)%\)")
_DETAILS_RE: Final = re.compile(
    r" \((?:approver (?P<approver>[^()]+?)(?:, expires (?P<expires>\d{4}-\d{2}-\d{2}))?"
    r"|expires (?P<only_expires>\d{4}-\d{2}-\d{2}))\)(?=; |$)"
)
_WAIVED_PREFIX: Final[str] = "waived: "
_EXPIRED_RE: Final = re.compile(r"waiver expired on (\d{4}-\d{2}-\d{2})$")


# --------------------------------------------------------------------------------------------- paths


def resolve_path(path: str | Path, start: Path | None = None) -> Path:
    """``path`` as given if absolute or existing from ``start`` (default: cwd), else under the repository root.

    The repository root is the first of ``start`` and its parents holding ``pyproject.toml`` and
    ``notebooks/``, so ``runs/demo-audit`` works both from the repository and from ``notebooks/`` (where
    Jupyter starts kernels). Without a repository root the path is returned relative to ``start``.
    """
    here = (start or Path.cwd()).resolve()
    candidate = Path(path).expanduser()
    if candidate.is_absolute():
        return candidate
    if (here / candidate).exists():
        return here / candidate
    for folder in (here, *here.parents):
        if (folder / "pyproject.toml").is_file() and (folder / "notebooks").is_dir():
            return folder / candidate
    return here / candidate


# --------------------------------------------------------------------------------------------- final rows


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


# --------------------------------------------------------------------------------------------- scores


def _weight_of(severity: pd.Series, weights: Mapping[str, float]) -> pd.Series:
    """The weight of each row's severity; KeyError naming a severity that ``weights`` lacks."""
    names = severity.astype(object)
    missing = sorted({str(s) for s in names.dropna().unique()} - set(weights))
    if missing:
        raise KeyError(f"no weight for severity {', '.join(missing)}")
    return names.map(lambda s: float(weights[str(s)])).astype("float64")


def _weighted_parts(
    final: pd.DataFrame, weights: Mapping[str, float], waived_is_compliant: bool
) -> tuple[pd.Series, pd.Series]:
    """(weight if compliant else 0, weight if applicable else 0) per row of a final-status frame."""
    status = final["status"].astype(object)
    weight = _weight_of(final["severity"], weights)
    good = ("pass", "waived") if waived_is_compliant else ("pass",)
    return weight.where(status.isin(good), 0.0), weight.where(status.isin(_APPLICABLE), 0.0)


def weighted_score(
    final: pd.DataFrame,
    weights: Mapping[str, float] = SEVERITY_WEIGHTS,
    *,
    waived_is_compliant: bool = True,
) -> float:
    """Severity-weighted compliance in percent over a final-status frame (:func:`final_status` columns).

    ``score = 100 * sum(w * compliant) / sum(w * applicable)`` where ``w`` is the weight of the row's
    severity, applicable means pass, fail or waived (not_applicable and error are left out, as in
    ``compliance_pct``) and compliant means pass (plus waived when ``waived_is_compliant``). NaN when
    nothing applies. With equal weights it equals ``compliance_pct``.
    """
    good, applicable = _weighted_parts(final, weights, waived_is_compliant)
    total = float(applicable.sum())
    return 100.0 * float(good.sum()) / total if total > 0 else math.nan


def weighted_scores(
    final: pd.DataFrame,
    by: str,
    weights: Mapping[str, float] = SEVERITY_WEIGHTS,
    *,
    waived_is_compliant: bool = True,
) -> pd.DataFrame:
    """:func:`weighted_score` per value of column ``by`` (e.g. ``host``): by, compliant_weight,
    applicable_weight, score_pct; sorted by ``by``."""
    good, applicable = _weighted_parts(final, weights, waived_is_compliant)
    parts = pd.DataFrame(
        {by: final[by].astype(object), "compliant_weight": good, "applicable_weight": applicable}
    )
    table = parts.groupby(by, sort=True).sum().reset_index()
    denominator = table["applicable_weight"].where(table["applicable_weight"] > 0)
    table["score_pct"] = (100.0 * table["compliant_weight"] / denominator).astype("float64")
    table[by] = table[by].astype("string")
    return table


# --------------------------------------------------------------------------------------------- heatmap


def status_matrix(
    final: pd.DataFrame,
    hosts: Sequence[str] | None = None,
    controls: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Host x control table of final statuses (text; ``""`` where there is no result) for one run.

    Rows are ``hosts`` (default: sorted host names), columns ``controls`` (default: highest severity first,
    then id). ValueError if ``final`` holds more than one run (a cell must mean one observation).
    """
    if final["run_id"].nunique() > 1:
        raise ValueError("status_matrix needs the final statuses of one run (filter on run_id first)")
    if controls is None:
        severity = final.groupby(final["control"].astype(object), observed=True)["severity"].max()
        rank = {str(c): -SEVERITIES.index(str(s)) for c, s in severity.items()}
        controls = sorted(rank, key=lambda c: (rank[c], c))
    if hosts is None:
        hosts = sorted(str(h) for h in final["host"].unique())
    table = pd.DataFrame(
        {"host": final["host"].astype(object), "control": final["control"].astype(object),
         "status": final["status"].astype(object)}
    ).pivot(index="host", columns="control", values="status")
    matrix = table.reindex(index=list(hosts), columns=list(controls)).astype(object).fillna("")
    matrix.index.name, matrix.columns.name = "host", "control"
    return matrix


# --------------------------------------------------------------------------------------------- auditor CSV


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


# --------------------------------------------------------------------------------------------- waivers


@dataclass(frozen=True)
class WaiverNote:
    """What a result row's message says about a waiver."""

    state: str  # "waived" (an active waiver applied) or "expired" (only an expired waiver matched)
    reason: str
    approver: str | None
    expires: date | None


def parse_waiver_note(message: str) -> WaiverNote | None:
    """Read the waiver part of a message written by :func:`hardnir.waivers.apply_waivers`, or None.

    ``waived: <reason> (approver <a>, expires <d>); <original message>`` gives state ``waived`` (the details
    in parentheses are optional; without them the reason is taken up to the first ``; ``);
    ``...; waiver expired on <d>`` gives state ``expired`` (the reason is not in the message: ``""``).
    """
    expired = _EXPIRED_RE.search(message)
    if expired:
        return WaiverNote("expired", "", None, date.fromisoformat(expired.group(1)))
    if not message.startswith(_WAIVED_PREFIX):
        return None
    rest = message[len(_WAIVED_PREFIX):]
    details = _DETAILS_RE.search(rest)
    if details is None:
        return WaiverNote("waived", rest.split("; ", 1)[0], None, None)
    expires = details.group("expires") or details.group("only_expires")
    return WaiverNote(
        "waived",
        rest[: details.start()],
        details.group("approver"),
        date.fromisoformat(expires) if expires else None,
    )


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


def _matching_expired(note: WaiverNote, host: str, control: str, waivers: Sequence[WaiverLike]) -> WaiverLike | None:
    """The waiver of the file that an ``expired`` note most likely refers to: same control and expiry, scoping
    the host by name, by ``all``, or by some group (group membership is not in the results)."""
    for waiver in waivers:
        if waiver.control == control and waiver.expires == note.expires and (
            waiver.all_hosts or host in waiver.hosts or waiver.groups
        ):
            return waiver
    return None


def waiver_findings(rows: pd.DataFrame, today: date, waivers: Sequence[WaiverLike] = ()) -> pd.DataFrame:
    """Rows whose message carries a waiver note (waived, or failing on an expired waiver).

    Columns: host, control, severity, status, state, reason, approver, expires, days_left; soonest expiry
    first (no expiry last). The message of a row failing on an expired waiver does not name it; with the
    ``waivers`` of the file, its reason and approver are filled in from the matching entry.
    """
    picked: list[int] = []
    found: list[WaiverNote] = []
    for position, (host, control, message) in enumerate(
        zip(rows["host"].astype(object), rows["control"].astype(object), rows["message"].astype(object),
            strict=True)
    ):
        note = parse_waiver_note(str(message))
        if note is None:
            continue
        if note.state == "expired":
            match = _matching_expired(note, str(host), str(control), waivers)
            if match is not None:
                note = WaiverNote("expired", match.reason, match.approver, note.expires)
        picked.append(position)
        found.append(note)
    chosen = rows.iloc[picked]
    table = pd.DataFrame(
        {
            "host": chosen["host"].astype("string").to_numpy(),
            "control": chosen["control"].astype("string").to_numpy(),
            "severity": chosen["severity"].to_numpy(),
            "status": chosen["status"].astype(object).to_numpy(),
            "state": [n.state for n in found],
            "reason": [n.reason for n in found],
            "approver": [n.approver for n in found],
            "expires": [n.expires for n in found],
            "days_left": pd.Series([_days_left(n.expires, today) for n in found], dtype="float64"),
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


# --------------------------------------------------------------------------------------------- remediation


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


# --------------------------------------------------------------------------------------------- timing, waves


def host_timing(df: pd.DataFrame) -> pd.DataFrame:
    """Per (run_id, host): started_at, finished_at, wall_s and the time in each phase.

    A host's time runs from its earliest row start to its latest row end (start + duration_s). A phase lasts
    from its first row's start to the first later start of a following phase (check, fix, verify, rollback),
    the last one to the host's end, so the phases add up to ``wall_s``. A phase that starts at the same
    instant as an earlier one gets 0 s: an unreachable host's error rows all start together, and its time
    (the connection attempt) belongs to ``check``.
    """
    ends = df["started_at"] + pd.to_timedelta(df["duration_s"], unit="s")
    rows = pd.DataFrame(
        {
            "run_id": df["run_id"].astype(object),
            "host": df["host"].astype(object),
            "phase": df["phase"].astype(object),
            "start": df["started_at"],
            "end": ends,
        }
    )
    records: list[dict[str, object]] = []
    phases = ("check", "fix", "verify", "rollback")
    for (run_id, host), group in rows.groupby(["run_id", "host"], sort=True):
        started, finished = group["start"].min(), group["end"].max()
        firsts = {p: group.loc[group["phase"] == p, "start"].min() for p in phases if (group["phase"] == p).any()}
        present = [p for p in phases if p in firsts]
        record: dict[str, object] = {
            "run_id": run_id,
            "host": host,
            "started_at": started,
            "finished_at": finished,
            "wall_s": (finished - started).total_seconds(),
        }
        begin = started
        for i, phase in enumerate(present):
            if i > 0 and firsts[phase] <= begin:
                record[f"{phase}_s"] = 0.0
                continue
            begin = started if i == 0 else firsts[phase]
            later = [firsts[p] for p in present[i + 1:] if firsts[p] > begin]
            until = min(later) if later else finished
            record[f"{phase}_s"] = max((until - begin).total_seconds(), 0.0)
        records.append(record)
    columns = ["run_id", "host", "started_at", "finished_at", "wall_s", *(f"{p}_s" for p in phases)]
    out = pd.DataFrame.from_records(records, columns=columns)
    used = [f"{p}_s" for p in phases if out[f"{p}_s"].notna().any()]
    out = out[[*columns[:5], *used]]
    out["run_id"] = out["run_id"].astype("string")
    out["host"] = out["host"].astype("string")
    for col in ("wall_s", *used):
        out[col] = out[col].astype("float64")
    return out


def wave_plan(meta: Mapping[str, object]) -> pd.DataFrame:
    """Which wave each host of a remediation was in, from ``run.json``: host, wave, ran, note.

    Waves are the run's ``hosts`` in order, cut every ``options.wave_size`` hosts (one wave when unset), as the
    runner cuts them. A wave ran if ``notes`` has its ``wave k/n`` line; ``note`` is that line, or the
    stop reason for waves that did not run.
    """
    hosts = [str(h) for h in _as_list(meta.get("hosts"))]
    options = meta.get("options")
    size_value = options.get("wave_size") if isinstance(options, Mapping) else None
    size = int(size_value) if isinstance(size_value, int | float) and size_value > 0 else max(len(hosts), 1)
    notes = [str(n) for n in _as_list(meta.get("notes"))]
    ran = {int(m.group(1)): n for n in notes if (m := _WAVE_NOTE_RE.match(n))}
    stop = next((n for n in notes if not _WAVE_NOTE_RE.match(n)), "")
    waves = [i // size + 1 for i in range(len(hosts))]
    return pd.DataFrame(
        {
            "host": pd.Series(hosts, dtype="string"),
            "wave": pd.Series(waves, dtype="int64"),
            "ran": pd.Series([w in ran for w in waves], dtype=bool),
            "note": pd.Series([ran.get(w, stop) for w in waves], dtype=object),
        }
    )


def _as_list(value: object) -> list[object]:
    """``value`` if it is a list, else an empty list (run.json fields may be missing)."""
    return list(value) if isinstance(value, list) else []


def wave_timing(df: pd.DataFrame, meta: Mapping[str, object]) -> pd.DataFrame:
    """Per wave of a remediation: hosts, ran, started_at, finished_at, wall_s, host_s (sum of host wall times),
    needs_human (hosts with a :data:`NEEDS_HUMAN` row) and the runner's note."""
    plan = wave_plan(meta)
    timing = host_timing(df[df["run_id"] == meta.get("run_id")] if "run_id" in meta else df)
    merged = plan.merge(timing.astype({"host": "string"}), on="host", how="left")
    human = set(needs_human(df)["host"].astype(object))
    merged["human"] = merged["host"].astype(object).isin(human)
    grouped = merged.groupby("wave", sort=True)
    out = grouped.agg(
        hosts=("host", "size"),
        ran=("ran", "all"),
        started_at=("started_at", "min"),
        finished_at=("finished_at", "max"),
        host_s=("wall_s", "sum"),
        needs_human=("human", "sum"),
        note=("note", "first"),
    ).reset_index()
    out["wall_s"] = (out["finished_at"] - out["started_at"]).dt.total_seconds()
    return out[["wave", "hosts", "ran", "started_at", "finished_at", "wall_s", "host_s", "needs_human", "note"]]


# --------------------------------------------------------------------------------------------- trends


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
