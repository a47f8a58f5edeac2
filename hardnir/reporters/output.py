"""Render a run in a named format, and write ``--report FORMAT[:FILE]`` outputs."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Final

from hardnir.reporters.formats import DEFAULT_FILES, parse_spec
from hardnir.reporters.html import render_html
from hardnir.reporters.jsondoc import render_json
from hardnir.reporters.junit import render_junit
from hardnir.reporters.model import RunReport, load_report
from hardnir.reporters.sarif import render_sarif
from hardnir.reporters.terminal import render_table
from hardnir.store.manifest import atomic_write, write_manifest

RENDERERS: Final[Mapping[str, Callable[[RunReport], str]]] = {
    "table": render_table,
    "junit": render_junit,
    "sarif": render_sarif,
    "json": render_json,
    "html": render_html,
}


def render(name: str, report: RunReport) -> str:
    """The report in format ``name`` (one of :data:`hardnir.reporters.formats.FORMATS`)."""
    return RENDERERS[name](report)


def write_reports(specs: Iterable[str], run_dir: Path, report: RunReport | None = None) -> list[Path]:
    """Write each ``FORMAT[:FILE]`` report of the run in ``run_dir``; files without a path go into ``run_dir``.

    When any report lands in the run directory, its ``SHA256SUMS`` is written again, last, so it covers them.
    """
    parsed = [parse_spec(s) for s in specs]
    if not parsed:
        return []
    report = report or load_report(run_dir)
    written = []
    for name, file in parsed:
        path = file if file is not None else Path(run_dir) / DEFAULT_FILES[name]
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, render(name, report).encode("utf-8"))
        written.append(path)
    if any(p.resolve().parent == Path(run_dir).resolve() for p in written):
        write_manifest(run_dir)
    return written
