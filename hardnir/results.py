"""Result rows, their DataFrame form, and the on-disk run store (CSV, Parquet, run.json).

A row is a plain dict with exactly :data:`hardnir.schema.COLUMNS` as keys, in order, optionally followed
by extra columns. :func:`make_row` is the one place that builds rows, so every row that leaves a runbook is
already validated and safe to show: statuses are checked against the schema, the message is one line,
evidence is capped, and control characters are neutralised (a hostile host must not be able to drive an
auditor's terminal with ANSI escapes or smuggle NUL bytes into a CSV file).

A run directory holds three files, each written atomically (temp file + rename), ``run.json`` last so that its
presence marks a complete run:

* ``results.parquet`` -- the exact typed frame, the primary format for notebooks;
* ``results.csv`` -- for auditors and spreadsheets: UTF-8, header = columns in order, ``started_at`` in
  ISO 8601 UTC, booleans ``true``/``false``, and formula neutralisation (see :func:`neutralise_formula`);
* ``run.json`` -- the run's metadata plus ``row_count``, ``columns`` and ``schema_version``.

Every string written (cells and metadata, recursively) goes through :func:`redact` first.
"""

from __future__ import annotations

import io
import json
import math
import os
import re
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Final

import numpy as np
import pandas as pd

from hardnir.schema import (
    CHECK_STATUSES,
    COLUMNS,
    EVIDENCE_MAX_CHARS,
    FIX_STATUSES,
    MESSAGE_MAX_CHARS,
    PHASES,
    ROLLBACK_STATUSES,
    RUNBOOKS,
    SEVERITIES,
    STATUSES,
    Row,
)

SCHEMA_VERSION: Final[int] = 1
RESULTS_CSV: Final[str] = "results.csv"
RESULTS_PARQUET: Final[str] = "results.parquet"
RUN_JSON: Final[str] = "run.json"
REDACTED: Final[str] = "***"
RUN_STARTED_AT: Final[str] = "run_started_at"

STRING_COLUMNS: Final[tuple[str, ...]] = (
    "run_id",
    "host",
    "control",
    "expected",
    "observed",
    "message",
    "evidence",
)
TIMESTAMP_DTYPE: Final = pd.DatetimeTZDtype(unit="us", tz="UTC")
PHASE_DTYPE: Final = pd.CategoricalDtype(list(PHASES))
STATUS_DTYPE: Final = pd.CategoricalDtype(list(STATUSES))
SEVERITY_DTYPE: Final = pd.CategoricalDtype(list(SEVERITIES), ordered=True)

#: Statuses each phase may carry (design.md, "Result rows").
PHASE_STATUSES: Final[Mapping[str, tuple[str, ...]]] = {
    "check": CHECK_STATUSES,
    "verify": CHECK_STATUSES,
    "fix": FIX_STATUSES,
    "rollback": ROLLBACK_STATUSES,
}

# C0 controls except tab, DEL, C1 controls; lone surrogates cannot be encoded as UTF-8 at all.
_CONTROL_RE: Final = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f]")
_SURROGATE_RE: Final = re.compile("[\ud800-\udfff]")
_NAMED_ESCAPES: Final[Mapping[str, str]] = {"\n": "\\n", "\r": "\\r"}
# Everything str.splitlines() treats as a line break, so a message really is one line.
_LINE_BREAK_RE: Final = re.compile("[\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]+")

#: Leading characters that make a spreadsheet treat a cell as a formula (OWASP CSV injection list plus the
#: full-width forms some locales also evaluate).
FORMULA_CHARS: Final[str] = "=+-@\t\r\uff1d\uff0b\uff0d\uff20"
_NEEDS_QUOTE_RE: Final = re.compile(f"^'*[{re.escape(FORMULA_CHARS)}]")
_QUOTED_RE: Final = re.compile(f"^'+[{re.escape(FORMULA_CHARS)}]")


class RunDirError(Exception):
    """A run directory is missing, incomplete or unreadable (one-line message naming the path)."""


# --------------------------------------------------------------------------------------------- cleaning


def _escape_control(match: re.Match[str]) -> str:
    """Visible replacement for one control character: ``\\n``, ``\\r`` or ``\\xNN``."""
    char = match.group(0)
    return _NAMED_ESCAPES.get(char, f"\\x{ord(char):02x}")


def neutralise_controls(text: str) -> str:
    """Replace control characters (C0 but tab, DEL, C1) by visible escapes, lone surrogates by U+FFFD.

    Why: cells end up in terminals and spreadsheets; raw ESC sequences could rewrite what an auditor sees and
    NUL bytes break many CSV readers. Escapes keep the text readable (``\\x1b[31m``) without being live.
    """
    return _CONTROL_RE.sub(_escape_control, _SURROGATE_RE.sub("\ufffd", text))


def truncate(text: str, limit: int) -> str:
    """Cap ``text`` at ``limit`` characters, ending with ``…[truncated N chars]`` when anything was cut."""
    if len(text) <= limit:
        return text
    keep = limit
    for _ in range(3):  # the marker's length depends on N; converges in at most two rounds
        keep = max(0, limit - len(f"…[truncated {len(text) - keep} chars]"))
    marker = f"…[truncated {len(text) - keep} chars]"
    if len(marker) > limit:  # no room for the marker: a hard cut still honours the cap
        return text[:limit]
    return text[:keep] + marker


def clean_message(text: str) -> str:
    """One-line, control-free, capped message: line breaks become spaces, then :func:`truncate`."""
    one_line = _LINE_BREAK_RE.sub(" ", text).strip()
    return truncate(neutralise_controls(one_line), MESSAGE_MAX_CHARS)


def evidence_text(evidence: object) -> str:
    """Evidence as text: strings as-is, anything else as sorted JSON; neutralised and capped."""
    if isinstance(evidence, str):
        text = evidence
    else:
        text = json.dumps(evidence, sort_keys=True, default=str, ensure_ascii=False)
    return truncate(neutralise_controls(text), EVIDENCE_MAX_CHARS)


# --------------------------------------------------------------------------------------------- rows


def _check_choice(name: str, value: str, allowed: Sequence[str]) -> None:
    """Raise ValueError unless ``value`` is one of ``allowed``."""
    if value not in allowed:
        raise ValueError(f"unknown {name} {value!r}; expected one of: {', '.join(allowed)}")


def _utc(started_at: datetime) -> datetime:
    """``started_at`` converted to UTC; naive datetimes are rejected because their zone is a guess."""
    if not isinstance(started_at, datetime):
        raise TypeError(f"started_at must be a datetime, got {type(started_at).__name__}")
    if started_at.tzinfo is None or started_at.utcoffset() is None:
        raise ValueError("started_at must be timezone-aware (use datetime.now(timezone.utc))")
    return started_at.astimezone(UTC)


def _duration(duration_s: float) -> float:
    """``duration_s`` as a finite float, negatives clamped to 0 (a wall-clock step must not lose a row)."""
    value = float(duration_s)
    if not math.isfinite(value):
        raise ValueError(f"duration_s must be a finite number, got {duration_s!r}")
    return max(value, 0.0)


def _clean_cell(value: object) -> object:
    """Neutralise control characters if ``value`` is a string; other values pass through."""
    return neutralise_controls(value) if isinstance(value, str) else value


def make_row(
    *,
    run_id: str,
    runbook: str,
    host: str,
    control: str,
    phase: str,
    status: str,
    severity: str,
    changed: bool = False,
    expected: str = "",
    observed: str = "",
    message: str = "",
    evidence: object = "",
    started_at: datetime,
    duration_s: float,
    **extra: object,
) -> Row:
    """Build one validated result row with exactly ``COLUMNS`` in order, then ``extra`` columns.

    Raises ValueError for an unknown phase, severity, or a status the phase cannot carry, for a naive
    ``started_at`` and for a non-finite duration, so that bad rows fail where they are made, not in a notebook.
    """
    _check_choice("phase", phase, PHASES)
    _check_choice(f"status for phase {phase!r}", status, PHASE_STATUSES[phase])
    _check_choice("severity", severity, SEVERITIES)
    if not isinstance(changed, bool):
        raise TypeError(f"changed must be a bool, got {type(changed).__name__}")
    row: Row = {
        "run_id": neutralise_controls(str(run_id)),
        "runbook": neutralise_controls(str(runbook)),
        "host": neutralise_controls(str(host)),
        "control": neutralise_controls(str(control)),
        "phase": phase,
        "status": status,
        "severity": severity,
        "changed": changed,
        "expected": neutralise_controls(str(expected)),
        "observed": neutralise_controls(str(observed)),
        "message": clean_message(str(message)),
        "evidence": evidence_text(evidence),
        "started_at": _utc(started_at),
        "duration_s": _duration(duration_s),
    }
    row.update({key: _clean_cell(value) for key, value in extra.items()})
    return row


# --------------------------------------------------------------------------------------------- frames


def _runbook_dtype(values: pd.Series) -> pd.CategoricalDtype:
    """Categories: the schema's runbooks, then any other runbook names present (sorted)."""
    present = {str(v) for v in values.dropna().unique()}
    extra = sorted(present.difference(RUNBOOKS))
    return pd.CategoricalDtype([*RUNBOOKS, *extra])


def _as_category(values: pd.Series, dtype: pd.CategoricalDtype, name: str) -> pd.Series:
    """Cast to ``dtype``, raising ValueError (not silently NaN) for values outside its categories."""
    lost = values.notna() & ~values.astype(object).isin(list(dtype.categories))
    if lost.any():
        bad = sorted({str(v) for v in values[lost].unique()})
        raise ValueError(f"column {name!r} has unknown values: {', '.join(map(repr, bad))}")
    return values.astype(dtype)


def _as_bool(values: pd.Series) -> pd.Series:
    """``changed`` as bool, refusing anything but booleans (``"false"`` must not silently become True)."""
    if values.dtype != bool and not values.map(lambda v: isinstance(v, bool | np.bool_)).all():
        raise ValueError("column 'changed' must hold only booleans")
    return values.astype(bool)


def _infer_extra(values: pd.Series) -> pd.Series:
    """Type an extra column: nullable dtypes where pandas can tell, else text (JSON for containers)."""
    if isinstance(values.dtype, pd.StringDtype):
        return values.astype("string")
    if values.dtype != object:
        return values
    converted = values.convert_dtypes()
    if isinstance(converted.dtype, pd.StringDtype):
        return converted.astype("string")
    if converted.dtype != object:
        return converted
    as_text = values.map(
        lambda v: v if v is None or isinstance(v, str) else json.dumps(v, sort_keys=True, default=str)
    )
    return as_text.astype("string")


def _coerce(frame: pd.DataFrame) -> pd.DataFrame:
    """Give a frame holding the schema columns the contract dtypes, schema columns first, extras after."""
    frame = frame.reset_index(drop=True)
    stamps = pd.to_datetime(frame["started_at"], utc=True, format="ISO8601")
    typed: dict[str, pd.Series] = {col: frame[col].astype("string") for col in STRING_COLUMNS}
    typed.update(
        runbook=frame["runbook"].astype(_runbook_dtype(frame["runbook"])),
        phase=_as_category(frame["phase"], PHASE_DTYPE, "phase"),
        status=_as_category(frame["status"], STATUS_DTYPE, "status"),
        severity=_as_category(frame["severity"], SEVERITY_DTYPE, "severity"),
        changed=_as_bool(frame["changed"]),
        started_at=stamps.astype(TIMESTAMP_DTYPE),
        duration_s=pd.to_numeric(frame["duration_s"]).astype("float64"),
    )
    ordered = {col: typed[col] for col in COLUMNS}
    ordered.update({col: _infer_extra(frame[col]) for col in frame.columns if col not in COLUMNS})
    return pd.DataFrame(ordered, index=pd.RangeIndex(len(frame)))


def _columns_of(rows: Sequence[Mapping[str, object]]) -> list[str]:
    """Schema columns, then extra keys in order of first appearance; ValueError if a row lacks a column."""
    extras: dict[str, None] = {}
    for index, row in enumerate(rows):
        missing = [col for col in COLUMNS if col not in row]
        if missing:
            raise ValueError(f"row {index} lacks columns: {', '.join(missing)}")
        extras.update((key, None) for key in row if key not in COLUMNS)
    return [*COLUMNS, *extras]


def to_frame(rows: Iterable[Mapping[str, object]]) -> pd.DataFrame:
    """One DataFrame over ``rows``, built once from column lists, with the contract dtypes.

    Empty input gives an empty frame with the same columns and dtypes, so code downstream never special-cases
    it.
    """
    materialised = list(rows)
    columns = _columns_of(materialised)
    data = {col: pd.Series([row.get(col) for row in materialised], dtype=object) for col in columns}
    return _coerce(pd.DataFrame(data, columns=columns))


# --------------------------------------------------------------------------------------------- redaction


def _secret_forms(secrets: Iterable[str]) -> list[str]:
    """Each secret as written raw, inside JSON and after control neutralisation; longest first."""
    forms: set[str] = set()
    for secret in secrets:
        if secret:
            in_json = json.dumps(secret, ensure_ascii=False)[1:-1]
            forms.update((secret, in_json, neutralise_controls(secret), neutralise_controls(in_json)))
    return sorted(forms, key=lambda s: (-len(s), s))


def _redactor(secrets: Iterable[str]) -> re.Pattern[str] | None:
    """One regex matching any form of any secret (longest first so overlapping secrets vanish whole)."""
    forms = _secret_forms(secrets)
    return re.compile("|".join(map(re.escape, forms))) if forms else None


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every non-empty secret replaced by ``***``."""
    pattern = _redactor(secrets)
    return pattern.sub(REDACTED, text) if pattern else text


def _redact_tree(value: object, pattern: re.Pattern[str] | None) -> object:
    """Redact every string inside a JSON-like tree (dict keys included)."""
    if pattern is None:
        return value
    if isinstance(value, str):
        return pattern.sub(REDACTED, value)
    if isinstance(value, Mapping):
        return {_redact_tree(k, pattern): _redact_tree(v, pattern) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact_tree(item, pattern) for item in value]
    return value


def _safe_row(row: Mapping[str, object], pattern: re.Pattern[str] | None) -> Row:
    """A copy of ``row`` whose strings are redacted and free of control characters."""
    out: Row = {}
    for key, value in row.items():
        if isinstance(value, str):
            value = neutralise_controls(pattern.sub(REDACTED, value) if pattern else value)
        out[key] = value
    return out


# --------------------------------------------------------------------------------------------- writing


def neutralise_formula(text: str) -> str:
    """Prefix ``'`` to a cell a spreadsheet would run as a formula.

    A cell is prefixed when, after any leading quotes, it starts with ``= + - @``, tab, CR (or their
    full-width forms). Counting leading quotes makes the transformation reversible: ``'=x`` is written
    ``''=x`` and read back as ``'=x``; see :func:`restore_formula`.
    """
    return "'" + text if _NEEDS_QUOTE_RE.match(text) else text


def restore_formula(text: str) -> str:
    """Undo :func:`neutralise_formula`: drop one ``'`` only where quotes precede a formula character."""
    return text[1:] if _QUOTED_RE.match(text) else text


def _is_text(series: pd.Series) -> bool:
    """Whether a column holds text (string, categorical or object)."""
    return isinstance(series.dtype, pd.StringDtype | pd.CategoricalDtype) or series.dtype == object


def csv_column(series: pd.Series) -> pd.Series:
    """Text form of one column for the CSV export (timestamps ISO UTC, booleans true/false, formulas neutralised)."""
    if str(series.dtype).startswith("datetime64"):
        stamps: pd.Series = series.dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ").astype(object)
        return stamps.where(series.notna(), "")
    if series.dtype == bool or isinstance(series.dtype, pd.BooleanDtype):
        return series.map({True: "true", False: "false"}).astype(object).where(series.notna(), "")
    if _is_text(series):
        text = series.astype(object).where(series.notna(), "")
        return text.map(lambda v: neutralise_formula(str(v)))
    return series.astype(object).where(series.notna(), "")


def _csv_bytes(frame: pd.DataFrame) -> bytes:
    """The CSV export of ``frame`` as UTF-8 bytes."""
    text = pd.DataFrame({col: csv_column(frame[col]) for col in frame.columns}, columns=list(frame.columns))
    return text.to_csv(index=False, lineterminator="\n").encode("utf-8")


def _parquet_bytes(frame: pd.DataFrame) -> bytes:
    """The Parquet export of ``frame``."""
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False, engine="pyarrow")
    return buffer.getvalue()


def _jsonable(value: object) -> object:
    """A JSON-compatible copy of ``value``: datetimes as ISO 8601, paths and others as text."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = [_jsonable(v) for v in value]
        return sorted(items, key=str) if isinstance(value, set | frozenset) else items
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def _atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temp file in the same directory and an atomic rename."""
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def write_run(
    run_dir: Path,
    rows: Sequence[Mapping[str, object]],
    meta: Mapping[str, object],
    secrets: Iterable[str] = (),
) -> pd.DataFrame:
    """Write ``results.parquet``, ``results.csv`` and (last) ``run.json`` into ``run_dir``, creating it; return the
    (redacted) frame that was written, so callers need not build it again.

    Every string cell and metadata value is redacted; cells are also stripped of control characters (a no-op
    for rows from :func:`make_row`). ``run.json`` gets ``row_count``, ``columns`` and ``schema_version`` on
    top of ``meta``.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    pattern = _redactor(secrets)
    frame = to_frame([_safe_row(row, pattern) for row in rows])
    document = _redact_tree(_jsonable(dict(meta)), pattern)
    assert isinstance(document, dict)
    document.update(row_count=len(frame), columns=list(frame.columns), schema_version=SCHEMA_VERSION)
    text = json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    _atomic_write(run_dir / RESULTS_PARQUET, _parquet_bytes(frame))
    _atomic_write(run_dir / RESULTS_CSV, _csv_bytes(frame))
    _atomic_write(run_dir / RUN_JSON, text.encode("utf-8"))
    return frame


# --------------------------------------------------------------------------------------------- reading


def _read_csv(path: Path) -> pd.DataFrame:
    """Read a ``results.csv`` back into raw columns, undoing formula neutralisation on text columns."""
    raw = pd.read_csv(path, dtype=object, keep_default_na=False, na_filter=False, encoding="utf-8")
    missing = [col for col in COLUMNS if col not in raw.columns]
    if missing:
        raise ValueError(f"missing columns {', '.join(missing)}")
    typed = {"started_at", "changed", "duration_s"}
    for col in raw.columns:
        if col not in typed:
            raw[col] = raw[col].map(restore_formula)
    raw["changed"] = raw["changed"].map({"true": True, "false": False})
    if raw["changed"].isna().any():
        raise ValueError("column 'changed' holds values other than true/false")
    raw["duration_s"] = pd.to_numeric(raw["duration_s"])
    return raw


def read_run(run_dir: Path) -> pd.DataFrame:
    """The typed result frame of one run: Parquet if present, else the CSV export."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunDirError(f"run directory not found: {run_dir}")
    parquet, csv = run_dir / RESULTS_PARQUET, run_dir / RESULTS_CSV
    try:
        if parquet.is_file():
            return _coerce(pd.read_parquet(parquet, engine="pyarrow"))
        if csv.is_file():
            return _coerce(_read_csv(csv))
    except Exception as exc:
        detail = " ".join(str(exc).split())
        raise RunDirError(f"cannot read results in {run_dir}: {type(exc).__name__}: {detail}") from exc
    raise RunDirError(f"no {RESULTS_PARQUET} or {RESULTS_CSV} in {run_dir}")


def read_meta(run_dir: Path) -> dict[str, object]:
    """The parsed ``run.json`` of one run."""
    path = Path(run_dir) / RUN_JSON
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise RunDirError(f"no {RUN_JSON} in {Path(run_dir)}") from exc
    except (OSError, ValueError) as exc:
        detail = " ".join(str(exc).split())
        raise RunDirError(f"cannot read {path}: {detail}") from exc
    if not isinstance(document, dict):
        raise RunDirError(f"{path} is not a JSON object")
    return document


# --------------------------------------------------------------------------------------------- many runs


def _is_run_dir(path: Path) -> bool:
    """Whether ``path`` holds a run (its metadata or results)."""
    return any((path / name).is_file() for name in (RUN_JSON, RESULTS_PARQUET, RESULTS_CSV))


def _parse_utc(value: object) -> pd.Timestamp | None:
    """A UTC timestamp from an ISO 8601 text (naive means UTC), or None if absent or unparsable."""
    if not isinstance(value, str) or not value:
        return None
    try:
        stamp = pd.Timestamp(value)
    except ValueError:
        return None
    if pd.isna(stamp):
        return None
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def _run_start(run_dir: Path, frame: pd.DataFrame) -> pd.Timestamp | None:
    """When a run started: run.json ``started_at``, else its earliest row."""
    meta = read_meta(run_dir) if (run_dir / RUN_JSON).is_file() else {}
    stamp = _parse_utc(meta.get("started_at"))
    if stamp is None and len(frame):
        stamp = pd.Timestamp(frame["started_at"].min())
    return stamp


def _as_paths(paths: str | Path | Iterable[str | Path]) -> list[Path]:
    """Normalise the ``paths`` argument of :func:`load_runs`."""
    if isinstance(paths, str | Path):
        return [Path(paths)]
    return [Path(p) for p in paths]


def _expand(path: Path) -> list[Path]:
    """``path`` itself if it is a run dir, else its run subdirs; RunDirError if it is neither."""
    if _is_run_dir(path):
        return [path]
    if path.is_dir():
        children = sorted(c for c in path.iterdir() if c.is_dir() and (c / RUN_JSON).is_file())
        if children:
            return children
        raise RunDirError(f"not a run directory and holds no run directories: {path}")
    raise RunDirError(f"run directory not found: {path}")


def _sort_key(item: tuple[Path, pd.DataFrame, pd.Timestamp | None]) -> tuple[bool, pd.Timestamp, str]:
    """Order runs by start (unknown starts last), then by directory name."""
    path, _, start = item
    return (start is None, start if start is not None else pd.Timestamp(0, tz="UTC"), path.name)


def _empty_runs() -> pd.DataFrame:
    """An empty multi-run frame with the contract dtypes."""
    frame = to_frame([])
    frame[RUN_STARTED_AT] = pd.Series([], dtype=TIMESTAMP_DTYPE)
    return frame


def load_runs(paths: str | Path | Iterable[str | Path]) -> pd.DataFrame:
    """One frame over many runs, with a ``run_started_at`` column so runs can be ordered.

    A path may be a run directory or a folder of run directories (expanded and sorted by run start). The same
    run directory given twice is read once.
    """
    seen: set[Path] = set()
    frames: list[pd.DataFrame] = []
    for path in _as_paths(paths):
        loaded = []
        for run_dir in _expand(path):
            if run_dir.resolve() not in seen:
                seen.add(run_dir.resolve())
                frame = read_run(run_dir)
                loaded.append((run_dir, frame, _run_start(run_dir, frame)))
        for _, frame, start in sorted(loaded, key=_sort_key):
            frames.append(frame.assign(**{RUN_STARTED_AT: start}))
    if not frames:
        return _empty_runs()
    combined = pd.concat([f.astype({"runbook": object}) for f in frames], ignore_index=True)
    started = pd.to_datetime(combined.pop(RUN_STARTED_AT), utc=True).astype(TIMESTAMP_DTYPE)
    typed = _coerce(combined)
    typed[RUN_STARTED_AT] = started.reset_index(drop=True)
    return typed


# --------------------------------------------------------------------------------------------- analysis


def run_starts(df: pd.DataFrame) -> pd.Series:
    """Start time per ``run_id``: ``run_started_at`` when the frame has it, else the run's earliest row."""
    stamps = df["started_at"]
    if RUN_STARTED_AT in df.columns:
        stamps = df[RUN_STARTED_AT].fillna(stamps)
    return stamps.groupby(df["run_id"].astype(object), sort=False).min()


_FINAL_COLUMNS: Final[list[str]] = ["run_id", "host", "control", "severity", "status"]
_KEY: Final[list[str]] = ["run_id", "host", "control"]


def _empty_final() -> pd.DataFrame:
    """An empty :func:`final_status` frame with its dtypes."""
    return pd.DataFrame(
        {
            "run_id": pd.Series([], dtype="string"),
            "host": pd.Series([], dtype="string"),
            "control": pd.Series([], dtype="string"),
            "severity": pd.Series([], dtype=SEVERITY_DTYPE),
            "status": pd.Series([], dtype=STATUS_DTYPE),
        }
    )


def _observed_final(df: pd.DataFrame) -> pd.DataFrame:
    """Per key, the (last) verify row if there is one, else the (last) check row."""
    rows = df[df["phase"].isin(["check", "verify"])]
    rank = (rows["phase"] == "verify").astype(int)
    ordered = rows.assign(_rank=rank.to_numpy()).sort_values("_rank", kind="stable")
    return ordered.drop_duplicates(_KEY, keep="last")[_FINAL_COLUMNS]


def _rollback_only(df: pd.DataFrame, observed: pd.DataFrame) -> pd.DataFrame:
    """Rollback-phase rows of rollback runs for keys that have no check/verify row in their run."""
    rows = df[(df["phase"] == "rollback") & (df["runbook"] == "rollback")]
    rows = rows.drop_duplicates(_KEY, keep="last")
    seen = pd.MultiIndex.from_frame(observed[_KEY].astype(object))
    mine = pd.MultiIndex.from_frame(rows[_KEY].astype(object))
    return rows[~mine.isin(seen)]


def _states_by_run(df: pd.DataFrame, starts: Mapping[object, object]) -> pd.DataFrame:
    """Per (run, host, control) of non-rollback runs: its start, ``check`` status and final status."""
    rows = df[(df["runbook"] != "rollback") & df["phase"].isin(["check", "verify"])]
    checks = rows[rows["phase"] == "check"].drop_duplicates(_KEY, keep="last")
    finals = _observed_final(rows)
    states = pd.merge(
        finals[[*_KEY, "status"]].astype(object).rename(columns={"status": "final"}),
        checks[[*_KEY, "status"]].astype(object).rename(columns={"status": "check"}),
        on=_KEY,
        how="left",
    )
    states["start"] = states["run_id"].map(starts)
    return states


def _rolled_back_states(df: pd.DataFrame, rollbacks: pd.DataFrame) -> pd.DataFrame:
    """Host state after rollback-only rows, taken from the latest earlier non-rollback run in ``df``.

    ``restored`` means the host is back to that run's ``check`` state; ``unchanged`` means it kept that run's
    final (verify, else check) state; a failed rollback leaves the host in an unknown state (``error``). Keys
    with nothing earlier to go by are left out.
    """
    starts = run_starts(df).to_dict()
    rb = rollbacks[[*_KEY, "severity", "status"]].astype(object)
    rb["start"] = rb["run_id"].map(starts)
    states = _states_by_run(df, starts).drop(columns="run_id")
    pairs = rb.merge(states, on=["host", "control"], how="inner", suffixes=("", "_prev"))
    pairs = pairs[pairs["start_prev"] < pairs["start"]]
    latest = pairs.sort_values("start_prev", kind="stable").drop_duplicates(_KEY, keep="last")
    rb = rb.merge(latest[[*_KEY, "check", "final"]], on=_KEY, how="left")
    failed = ~rb["status"].isin(["restored", "unchanged"])
    rb["state"] = rb["check"].where(rb["status"] == "restored", rb["final"]).where(~failed, "error")
    return rb[rb["state"].notna()].drop(columns="status").rename(columns={"state": "status"})[_FINAL_COLUMNS]


def final_status(df: pd.DataFrame) -> pd.DataFrame:
    """Per (run_id, host, control), the status describing the host after the run.

    The verify row if present, else the check row; fix and rollback rows are ignored. For a rollback run that
    has only rollback rows, the state is looked up in the latest earlier run of the frame (see
    :func:`_rolled_back_states`). Columns: run_id, host, control, severity, status.
    """
    if df.empty:
        return _empty_final()
    observed = _observed_final(df)
    rollbacks = _rollback_only(df, observed)
    parts = [observed]
    if not rollbacks.empty:
        parts.append(_rolled_back_states(df, rollbacks))
    parts = [p.astype(object) for p in parts if not p.empty]
    if not parts:
        return _empty_final()
    combined = pd.concat(parts, ignore_index=True)
    result = pd.DataFrame(
        {
            "run_id": combined["run_id"].astype("string"),
            "host": combined["host"].astype("string"),
            "control": combined["control"].astype("string"),
            "severity": combined["severity"].astype(SEVERITY_DTYPE),
            "status": combined["status"].astype(STATUS_DTYPE),
        }
    )
    return result.sort_values(_KEY, kind="stable").reset_index(drop=True)


_COUNTED: Final[tuple[str, ...]] = ("pass", "fail", "waived", "not_applicable", "error")


def _counts(final: pd.DataFrame, by: str) -> pd.DataFrame:
    """Counts of each final status per value of column ``by``, with ``compliance_pct``."""
    keys = final[by].astype(object)
    table = pd.crosstab(keys, final["status"].astype(object)) if len(final) else pd.DataFrame()
    table = table.reindex(columns=list(_COUNTED), fill_value=0).astype("int64")
    table.index.name = by
    table.columns.name = None
    applicable = table["pass"] + table["fail"] + table["waived"]
    good = table["pass"] + table["waived"]
    table["compliance_pct"] = (100.0 * good / applicable.where(applicable > 0)).astype("float64")
    out = table.reset_index()
    out[by] = out[by].astype("string")
    return out


def compliance(df: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Final-status counts per control (``by_control``, with its highest severity) and per host (``by_host``).

    ``compliance_pct`` = 100 * (pass + waived) / (pass + fail + waived), NaN when nothing applies. Counts are
    taken over every run in ``df``; pass one run (or the latest) for a fleet snapshot.
    """
    final = final_status(df)
    by_control = _counts(final, "control")
    severity = final.groupby(final["control"].astype(object), observed=True)["severity"].max()
    sev = by_control["control"].astype(object).map(severity).astype(SEVERITY_DTYPE)
    by_control.insert(1, "severity", sev)
    by_host = _counts(final, "host")
    return {
        "by_control": by_control.sort_values("control", kind="stable").reset_index(drop=True),
        "by_host": by_host.sort_values("host", kind="stable").reset_index(drop=True),
    }
