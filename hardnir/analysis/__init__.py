"""Analysis helpers for the notebooks: weighted scores, heatmap matrices, waivers, remediation review, trends.

Pure functions over the result frames of :func:`hardnir.results.read_run` / :func:`hardnir.results.load_runs`
and the ``run.json`` metadata of :func:`hardnir.results.read_meta`, one module per question; this package
gathers their public names (``from hardnir import analysis; analysis.weighted_score(...)``). Nothing here talks
to hosts; :mod:`hardnir.analysis.notebook` holds the display and export helpers the notebooks share.

Timing note: a row's ``duration_s`` counts from the moment its host (or its fix step) started to the moment the
row was made, so durations of rows of one host overlap and must not be summed. :func:`host_timing` works from
start and end instants instead.
"""

from __future__ import annotations

from hardnir.analysis.auditing import (
    COLUMN_DESCRIPTIONS,
    auditor_csv,
    data_dictionary,
    final_rows,
    pretty_evidence,
)
from hardnir.analysis.heatmap import STATUS_COLOURS, STATUS_LABELS, status_matrix
from hardnir.analysis.notebook import jsonable, rounded, save_figure, show, table_records
from hardnir.analysis.paths import resolve_path
from hardnir.analysis.remediation import (
    NEEDS_HUMAN,
    before_after,
    fix_outcomes,
    fix_reasons,
    needs_human,
    transitions,
)
from hardnir.analysis.scores import SEVERITY_WEIGHTS, weighted_score, weighted_scores
from hardnir.analysis.timing import host_timing, wave_plan, wave_timing
from hardnir.analysis.trends import compliance_trend, consecutive_drift, drift_between, run_order
from hardnir.analysis.waiver_review import WaiverLike, waiver_findings, waiver_register

__all__ = [
    "COLUMN_DESCRIPTIONS",
    "NEEDS_HUMAN",
    "SEVERITY_WEIGHTS",
    "STATUS_COLOURS",
    "STATUS_LABELS",
    "WaiverLike",
    "auditor_csv",
    "before_after",
    "compliance_trend",
    "consecutive_drift",
    "data_dictionary",
    "drift_between",
    "final_rows",
    "fix_outcomes",
    "fix_reasons",
    "host_timing",
    "jsonable",
    "needs_human",
    "pretty_evidence",
    "resolve_path",
    "rounded",
    "run_order",
    "save_figure",
    "show",
    "status_matrix",
    "table_records",
    "transitions",
    "waiver_findings",
    "waiver_register",
    "wave_plan",
    "wave_timing",
    "weighted_score",
    "weighted_scores",
]
