"""Time per host and phase, and per remediation wave (waves as recorded in ``run.json``)."""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from hardnir.analysis.remediation import needs_human
from hardnir.waves import wave_note, wave_records


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
    """Which wave each host of a remediation was in, from ``run.json`` ``waves``: host, wave, ran, note.

    ``note`` is the wave's one-line summary (:func:`hardnir.waves.wave_note`): its failure count, or why it did
    not run. A run without wave records is one wave of its ``hosts``.
    """
    hosts: list[str] = []
    numbers: list[int] = []
    ran: list[bool] = []
    notes: list[str] = []
    for record in wave_records(meta):
        members = record.get("hosts")
        for host in members if isinstance(members, list) else []:
            hosts.append(str(host))
            numbers.append(int(str(record.get("wave", 0))))
            ran.append(bool(record.get("ran")))
            notes.append(wave_note(record))
    return pd.DataFrame(
        {
            "host": pd.Series(hosts, dtype="string"),
            "wave": pd.Series(numbers, dtype="int64"),
            "ran": pd.Series(ran, dtype=bool),
            "note": pd.Series(notes, dtype=object),
        }
    )


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
