"""The JSON report: run metadata, controls, summary and every row, in a documented, versioned shape.

The shape is the JSON Schema ``report.schema.json`` next to this module (``JSON_SCHEMA_ID``); its
``format_version`` changes only when a field is removed or changes meaning (new fields may appear without
it). Top level::

    {"format": "hardnir-report", "format_version": 1,
     "run": {...run.json...},                 # run_id, runbook, started_at, operator, options, waves, exit_code...
     "controls": [{control, title, section, severity, rationale, remediation, references, version}],
     "summary": {"final_status": {pass: n, ...}, "by_control": [...], "by_host": [...],
                 "fix": {status: n} | null, "rollback": {status: n} | null},
     "findings": [final rows with status fail or error, all columns],
     "rows": [every row, all columns: the results.csv columns first, in order]}
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Final

from hardnir.reporters.model import RunReport, records
from hardnir.rollups import compliance
from hardnir.schema import CHECK_STATUSES, FIX_STATUSES, ROLLBACK_STATUSES

FORMAT_NAME: Final[str] = "hardnir-report"
FORMAT_VERSION: Final[int] = 1
JSON_SCHEMA_ID: Final[str] = "report.schema.json"


def json_schema() -> dict[str, object]:
    """The JSON Schema of the report (draft 2020-12)."""
    text = resources.files("hardnir.reporters").joinpath(JSON_SCHEMA_ID).read_text(encoding="utf-8")
    schema = json.loads(text)
    assert isinstance(schema, dict)
    return schema


def _phase_counts(report: RunReport, phase: str, statuses: tuple[str, ...]) -> dict[str, int] | None:
    rows = report.frame[report.frame["phase"] == phase]
    if rows.empty:
        return None
    counts = rows["status"].astype(object).value_counts()
    return {s: int(counts.get(s, 0)) for s in statuses}


def summary(report: RunReport) -> dict[str, object]:
    """Final-status counts, compliance per control and per host, fix and rollback outcome counts."""
    counts = report.final["status"].astype(object).value_counts()
    tables = compliance(report.frame)
    return {
        "final_status": {s: int(counts.get(s, 0)) for s in CHECK_STATUSES},
        "by_control": records(tables["by_control"]),
        "by_host": records(tables["by_host"]),
        "fix": _phase_counts(report, "fix", FIX_STATUSES),
        "rollback": _phase_counts(report, "rollback", ROLLBACK_STATUSES),
    }


def report_document(report: RunReport) -> dict[str, object]:
    """The JSON report as a Python object."""
    return {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "run": report.meta,
        "controls": [report.control(c) for c in report.control_ids()],
        "summary": summary(report),
        "findings": records(report.findings()),
        "rows": records(report.frame),
    }


def render_json(report: RunReport) -> str:
    """The JSON report as text (UTF-8, indented, keys in a stable order)."""
    return json.dumps(report_document(report), indent=2, ensure_ascii=False, allow_nan=False) + "\n"
