"""The run store: redaction, the CSV and Parquet files, ``run.json``, ``controls.json``, the ``SHA256SUMS``
manifest (written last), and loading one or many runs back."""

from __future__ import annotations

from hardnir.store.csvfile import FORMULA_CHARS, csv_column, neutralise_formula, restore_formula
from hardnir.store.loading import load_runs
from hardnir.store.manifest import MANIFEST, ManifestCheck, ManifestError, verify_manifest, write_manifest
from hardnir.store.redaction import REDACTED, redact
from hardnir.store.rundir import (
    CONTROLS_JSON,
    RESULTS_CSV,
    RESULTS_PARQUET,
    RUN_JSON,
    SCHEMA_VERSION,
    RunDirError,
    read_controls,
    read_meta,
    read_run,
    write_run,
)

__all__ = [
    "CONTROLS_JSON",
    "FORMULA_CHARS",
    "MANIFEST",
    "REDACTED",
    "RESULTS_CSV",
    "RESULTS_PARQUET",
    "RUN_JSON",
    "SCHEMA_VERSION",
    "ManifestCheck",
    "ManifestError",
    "RunDirError",
    "csv_column",
    "load_runs",
    "neutralise_formula",
    "read_controls",
    "read_meta",
    "read_run",
    "redact",
    "restore_formula",
    "verify_manifest",
    "write_manifest",
    "write_run",
]
