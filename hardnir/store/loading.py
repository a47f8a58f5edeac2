"""Many runs as one frame: run directories (or folders of them) read, ordered by start, stacked."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from hardnir.frames import RUN_STARTED_AT, TIMESTAMP_DTYPE, coerce, to_frame
from hardnir.store.rundir import RESULTS_CSV, RESULTS_PARQUET, RUN_JSON, RunDirError, read_meta, read_run


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
    typed = coerce(combined)
    typed[RUN_STARTED_AT] = started.reset_index(drop=True)
    return typed
