"""One run directory: write it (redacted) and read it back.

A run directory holds these files, each written atomically (temp file + rename):

* ``results.parquet`` -- the exact typed frame, the primary format for notebooks;
* ``results.csv`` -- for auditors and spreadsheets (:mod:`hardnir.store.csvfile`);
* ``controls.json`` -- the metadata of the run's controls (title, guide section, severity, rationale,
  remediation, references), when the runner passes it;
* ``run.json`` -- the run's metadata plus ``row_count``, ``columns`` and ``schema_version``;
* ``SHA256SUMS`` -- written last, the digest of every other file (:mod:`hardnir.store.manifest`).

Every string written (cells and metadata, recursively) goes through :func:`hardnir.store.redaction.redact` first.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Final

from hardnir.store.columns import RunColumns, run_columns
from hardnir.store.csvfile import write_csv
from hardnir.store.manifest import atomic_file, atomic_write, write_manifest
from hardnir.store.redaction import redact_tree, redactor

if TYPE_CHECKING:
    import pandas as pd

SCHEMA_VERSION: Final[int] = 2
RESULTS_CSV: Final[str] = "results.csv"
RESULTS_PARQUET: Final[str] = "results.parquet"
RUN_JSON: Final[str] = "run.json"
CONTROLS_JSON: Final[str] = "controls.json"


class RunDirError(Exception):
    """A run directory is missing, incomplete or unreadable (one-line message naming the path)."""


def _typed_frame(columns: RunColumns) -> pd.DataFrame:
    """The contract frame of columns that are not plain: pandas types them (what :func:`to_frame` does)."""
    import pandas as pd

    from hardnir.frames import coerce

    data = {name: pd.Series(columns.values[name], dtype=object) for name in columns.names}
    return coerce(pd.DataFrame(data, columns=columns.names))


def _write_results(run_dir: Path, columns: RunColumns) -> None:
    """``results.parquet`` and ``results.csv``: straight from plain columns with pyarrow and the csv module; through
    a typed frame when some column is not plain (a plugin's int column, a hand-made row)."""
    frame = None if columns.plain else _typed_frame(columns)
    with atomic_file(run_dir / RESULTS_PARQUET) as handle:
        if frame is None:
            from hardnir.store.arrowfile import write_parquet

            write_parquet(handle, columns)
        else:
            from hardnir.store.arrowfile import POOL

            frame.to_parquet(handle, index=False, engine="pyarrow", memory_pool=POOL)
    with atomic_file(run_dir / RESULTS_CSV) as handle:
        write_csv(handle, columns, frame)


def jsonable(value: object) -> object:
    """A JSON-compatible copy of ``value``: datetimes as ISO 8601, paths and others as text."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = [jsonable(v) for v in value]
        return sorted(items, key=str) if isinstance(value, set | frozenset) else items
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def _json_bytes(document: object) -> bytes:
    return (json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")


def write_run(
    run_dir: Path,
    rows: Sequence[Mapping[str, object]],
    meta: Mapping[str, object],
    secrets: Iterable[str] = (),
    controls: Sequence[Mapping[str, object]] | None = None,
) -> None:
    """Write the run directory (creating it): Parquet, CSV, ``controls.json`` (when ``controls`` is given),
    ``run.json``, then ``SHA256SUMS``. :func:`read_run` gives back the (redacted) typed frame.

    Every string cell and metadata value is redacted; cells are also stripped of control characters (a no-op
    for rows from :func:`hardnir.rows.make_row`). ``run.json`` gets ``row_count``, ``columns`` and
    ``schema_version`` on top of ``meta``. The rows are not copied (see :mod:`hardnir.store.columns`), and pandas
    is not imported for rows made by :func:`hardnir.rows.make_row`.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    pattern = redactor(secrets)
    columns = run_columns(rows, pattern)
    document = redact_tree(jsonable(dict(meta)), pattern)
    assert isinstance(document, dict)
    document.update(row_count=len(columns), columns=list(columns.names), schema_version=SCHEMA_VERSION)
    _write_results(run_dir, columns)
    del columns
    if controls is not None:
        atomic_write(run_dir / CONTROLS_JSON, _json_bytes(redact_tree(jsonable(list(controls)), pattern)))
    atomic_write(run_dir / RUN_JSON, _json_bytes(document))
    write_manifest(run_dir)


def read_run(run_dir: Path, columns: Collection[str] | None = None) -> pd.DataFrame:
    """The typed result frame of one run: Parquet if present, else the CSV export.

    With ``columns``, the frame holds only those of them the run has, in the run's order, typed exactly as in the
    whole frame; from Parquet only those columns are read (``evidence``, most of a run's bytes, stays on disk
    unless asked for).
    """
    from hardnir.frames import coerce
    from hardnir.store.arrowfile import read_parquet
    from hardnir.store.csvfile import read_csv

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunDirError(f"run directory not found: {run_dir}")
    parquet, csv = run_dir / RESULTS_PARQUET, run_dir / RESULTS_CSV
    try:
        if parquet.is_file():
            if columns is None:
                return coerce(read_parquet(parquet))
            return _only(_typed_part(read_parquet(parquet, columns)), columns)
        if csv.is_file():
            whole = coerce(read_csv(csv))
            return whole if columns is None else _only(whole, columns)
    except Exception as exc:
        detail = " ".join(str(exc).split())
        raise RunDirError(f"cannot read results in {run_dir}: {type(exc).__name__}: {detail}") from exc
    raise RunDirError(f"no {RESULTS_PARQUET} or {RESULTS_CSV} in {run_dir}")


def _typed_part(frame: pd.DataFrame) -> pd.DataFrame:
    """Some of a run's columns, typed as :func:`hardnir.frames.coerce` types the whole: the contract's columns
    left unread get valid stand-ins for the typing (:func:`_only` drops them again)."""
    from hardnir.frames import coerce
    from hardnir.schema import COLUMN_KINDS, COLUMNS

    stand_ins = {name: False if COLUMN_KINDS[name] == "bool" else None
                 for name in COLUMNS if name not in frame.columns}
    return coerce(frame.assign(**stand_ins))


def _only(frame: pd.DataFrame, columns: Collection[str]) -> pd.DataFrame:
    """The frame's columns that are in ``columns``, in the frame's order."""
    return frame[[name for name in frame.columns if name in columns]]


def _read_json(path: Path, run_dir: Path) -> object:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise RunDirError(f"no {path.name} in {run_dir}") from exc
    except (OSError, ValueError) as exc:
        detail = " ".join(str(exc).split())
        raise RunDirError(f"cannot read {path}: {detail}") from exc


def read_meta(run_dir: Path) -> dict[str, object]:
    """The parsed ``run.json`` of one run."""
    path = Path(run_dir) / RUN_JSON
    document = _read_json(path, Path(run_dir))
    if not isinstance(document, dict):
        raise RunDirError(f"{path} is not a JSON object")
    return document


def read_controls(run_dir: Path) -> list[dict[str, object]]:
    """The run's ``controls.json`` records, or ``[]`` when the run has none (older runs)."""
    path = Path(run_dir) / CONTROLS_JSON
    if not path.is_file():
        return []
    document = _read_json(path, Path(run_dir))
    if not isinstance(document, list) or not all(isinstance(item, dict) for item in document):
        raise RunDirError(f"{path} is not a JSON list of objects")
    return document
