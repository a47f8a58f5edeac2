"""The run store: redaction, the CSV and Parquet files, ``run.json``, ``controls.json``, the ``SHA256SUMS``
manifest (written last), and loading one or many runs back. Importing it (and writing a run) does not import
pandas; reading runs back does."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hardnir.store.csvfile import FORMULA_CHARS, csv_column, neutralise_formula, restore_formula
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

if TYPE_CHECKING:
    from hardnir.store.loading import load_runs


def __getattr__(name: str) -> Any:
    """``load_runs`` is imported when first used: it needs pandas, which writing a run does not."""
    if name == "load_runs":
        from hardnir.store.loading import load_runs

        return load_runs
    raise AttributeError(f"module 'hardnir.store' has no attribute {name!r}")
