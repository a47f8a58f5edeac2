"""Result rows, their DataFrame form, the run store and the roll-ups, in one namespace.

This module only gathers the public names of the modules that do the work, so code written against
``hardnir.results`` keeps working:

* :mod:`hardnir.rows` -- :func:`make_row` and the cleaning of cells (no pandas);
* :mod:`hardnir.frames` -- :func:`to_frame` and the contract dtypes;
* :mod:`hardnir.store` -- redaction, ``results.csv``/``results.parquet``/``run.json``/``controls.json``, the
  ``SHA256SUMS`` manifest, :func:`read_run`, :func:`read_meta`, :func:`load_runs`;
* :mod:`hardnir.rollups` -- :func:`final_status`, :func:`compliance`, :func:`run_starts`.
"""

from __future__ import annotations

from hardnir.frames import (
    PHASE_DTYPE,
    RUN_STARTED_AT,
    SEVERITY_DTYPE,
    STATUS_DTYPE,
    STRING_COLUMNS,
    TIMESTAMP_DTYPE,
    to_frame,
)
from hardnir.rollups import compliance, final_status, run_starts
from hardnir.rows import PHASE_STATUSES, clean_message, evidence_text, make_row, neutralise_controls, truncate
from hardnir.store import (
    CONTROLS_JSON,
    FORMULA_CHARS,
    MANIFEST,
    REDACTED,
    RESULTS_CSV,
    RESULTS_PARQUET,
    RUN_JSON,
    SCHEMA_VERSION,
    RunDirError,
    csv_column,
    load_runs,
    neutralise_formula,
    read_controls,
    read_meta,
    read_run,
    redact,
    restore_formula,
    verify_manifest,
    write_manifest,
    write_run,
)

__all__ = [
    "CONTROLS_JSON",
    "FORMULA_CHARS",
    "MANIFEST",
    "PHASE_DTYPE",
    "PHASE_STATUSES",
    "REDACTED",
    "RESULTS_CSV",
    "RESULTS_PARQUET",
    "RUN_JSON",
    "RUN_STARTED_AT",
    "SCHEMA_VERSION",
    "SEVERITY_DTYPE",
    "STATUS_DTYPE",
    "STRING_COLUMNS",
    "TIMESTAMP_DTYPE",
    "RunDirError",
    "clean_message",
    "compliance",
    "csv_column",
    "evidence_text",
    "final_status",
    "load_runs",
    "make_row",
    "neutralise_controls",
    "neutralise_formula",
    "read_controls",
    "read_meta",
    "read_run",
    "redact",
    "restore_formula",
    "run_starts",
    "to_frame",
    "truncate",
    "verify_manifest",
    "write_manifest",
    "write_run",
]
