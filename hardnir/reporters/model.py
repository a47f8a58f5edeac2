"""What every report format is made from: one run's rows, its metadata and its controls' metadata."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from hardnir.analysis.auditing import final_rows
from hardnir.schema import SEVERITIES
from hardnir.store import read_controls, read_meta, read_run

#: Final statuses that are findings a person must read, most serious first.
FINDING_STATUSES: tuple[str, ...] = ("fail", "error")


@dataclass
class RunReport:
    """One run, ready to render: ``frame`` (every row), ``meta`` (run.json) and ``controls`` (by id)."""

    frame: pd.DataFrame
    meta: dict[str, object]
    controls: dict[str, dict[str, object]]
    run_dir: Path | None = None
    final: pd.DataFrame = field(init=False)

    def __post_init__(self) -> None:
        self.final = final_rows(self.frame)

    @property
    def run_id(self) -> str:
        return str(self.meta.get("run_id") or (self.frame["run_id"].iloc[0] if len(self.frame) else ""))

    @property
    def runbook(self) -> str:
        return str(self.meta.get("runbook") or (self.frame["runbook"].iloc[0] if len(self.frame) else ""))

    def hosts(self) -> list[str]:
        """Every host of the run: run.json's list (in inventory order), then any other host in the rows."""
        listed = self.meta.get("hosts")
        names = [str(h) for h in listed] if isinstance(listed, list) else []
        return list(dict.fromkeys([*names, *sorted(str(h) for h in self.frame["host"].unique())]))

    def control_ids(self) -> list[str]:
        """Every control of the run, highest severity first, then by id."""
        ids = {str(c) for c in self.frame["control"].unique()} | set(self.controls)
        return sorted(ids, key=lambda c: (-SEVERITIES.index(self.severity(c)), c))

    def severity(self, control: str) -> str:
        record = self.controls.get(control, {})
        severity = str(record.get("severity", ""))
        if severity in SEVERITIES:
            return severity
        rows = self.frame.loc[self.frame["control"] == control, "severity"]
        return str(rows.max()) if len(rows) else "low"

    def control(self, control: str) -> dict[str, object]:
        """The metadata record of a control (title, section, severity, rationale, remediation, references)."""
        record: dict[str, object] = {"control": control, "title": control, "section": "", "rationale": "",
                                     "remediation": "", "references": []}
        record.update(self.controls.get(control, {}))
        record["severity"] = self.severity(control)
        return record

    def findings(self) -> pd.DataFrame:
        """Final rows whose status is fail or error: severity (highest first), control, host."""
        rows = self.final[self.final["status"].astype(object).isin(FINDING_STATUSES)]
        keys = pd.DataFrame({
            "rank": rows["severity"].astype(object).map(lambda s: -SEVERITIES.index(str(s))),
            "control": rows["control"].astype(object), "status": rows["status"].astype(object),
            "host": rows["host"].astype(object)})
        order = keys.sort_values(["rank", "control", "status", "host"], ascending=[True, True, False, True],
                                 kind="stable").index
        return rows.loc[order].reset_index(drop=True)


def catalogue_records() -> dict[str, dict[str, object]]:
    """Control metadata from the installed catalogue (for runs written without ``controls.json``)."""
    from hardnir.control import catalogue, control_record

    return {c.id: control_record(c.meta) for c in catalogue().values()}


def _controls_of(run_dir: Path, ids: set[str]) -> dict[str, dict[str, object]]:
    records = {str(r.get("control")): r for r in read_controls(run_dir)}
    missing = ids - set(records)
    if missing:
        known = catalogue_records()
        records.update({c: known[c] for c in missing if c in known})
    return records


def load_report(run_dir: Path, columns: Collection[str] | None = None) -> RunReport:
    """A :class:`RunReport` from a run directory (``controls.json`` if present, else the catalogue).

    With ``columns`` (see :func:`hardnir.reporters.reading.columns_read`), its frame holds only those of the run's
    columns, the only ones read from disk: enough for the outputs that read no more.
    """
    run_dir = Path(run_dir)
    frame = read_run(run_dir, columns)
    meta = read_meta(run_dir)
    return RunReport(frame, meta, _controls_of(run_dir, {str(c) for c in frame["control"].unique()}), run_dir)


def plain(value: object) -> object:
    """A cell as a plain JSON value: timestamps ISO 8601 UTC, NA as None, numpy scalars as Python ones."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, pd.Timestamp):
        return value.isoformat().replace("+00:00", "Z")
    item = getattr(value, "item", None)
    if callable(item) and not isinstance(value, str | bytes):
        value = item()
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value if isinstance(value, bool | int | float | str) else str(value)


def records(frame: pd.DataFrame) -> list[dict[str, object]]:
    """Every row of ``frame`` as a dict of plain JSON values, columns in frame order."""
    return [{str(k): plain(v) for k, v in row.items()} for row in frame.to_dict("records")]
