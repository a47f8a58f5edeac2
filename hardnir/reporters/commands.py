"""The command-line side of reports: options shared by audit/remediate/rollback, what they print after a run,
and ``hardnir report`` (formats, ``-o``, ``--verify``). Heavy modules are imported inside the functions so that
``hardnir --help`` stays fast."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from hardnir.reporters.formats import FORMATS, ReportSpecError, parse_spec

EXIT_TAMPERED = 1


def _report_spec(value: str) -> str:
    """Check a ``--report`` value when the command line is parsed, before any host is contacted."""
    try:
        parse_spec(value)
    except ReportSpecError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return value


def add_run_output_options(p: argparse.ArgumentParser) -> None:
    """``-q``, ``--format table|json`` and ``--report FORMAT[:FILE]`` (repeatable) for a runbook command."""
    p.add_argument("-q", "--quiet", action="store_true",
                   help="no progress bar and no findings: print only the summary line, run directory and exit code")
    p.add_argument("--format", choices=("table", "json"), default="table",
                   help="what goes to stdout: the tables and findings (default), or the JSON report for scripts")
    p.add_argument("--report", action="append", default=[], metavar="FORMAT[:FILE]", type=_report_spec,
                   help=f"also write a report ({', '.join(FORMATS)}); without FILE it goes into the run directory "
                   "(report.html, report.junit.xml, ...). Repeatable")


def add_report_command_options(p: argparse.ArgumentParser) -> None:
    """The options of ``hardnir report``."""
    p.add_argument("--format", choices=FORMATS, default="table",
                   help="table (default; several runs: what changed), junit, sarif, json or html")
    p.add_argument("-o", "--output", metavar="FILE", help="write the report to FILE instead of stdout")
    p.add_argument("--verify", action="store_true",
                   help="check the run directory's files against its SHA256SUMS (exit 1 if any differ or are gone)")


def after_run(args: argparse.Namespace, run_dir: Path, notes: list[str], exit_code: int) -> None:
    """Print what a runbook command shows when it is done, and write its ``--report`` files."""
    from hardnir.reporters.jsondoc import render_json
    from hardnir.reporters.model import load_report
    from hardnir.reporters.output import write_reports
    from hardnir.reporters.reading import columns_read
    from hardnir.reporters.terminal import one_line_summary, render_table

    shown = "json" if args.format == "json" else "summary" if args.quiet else "table"
    report = load_report(run_dir, columns_read([shown, *(parse_spec(spec)[0] for spec in args.report)]))
    written = write_reports(args.report, run_dir, report)
    if args.format == "json":
        sys.stdout.write(render_json(report))
        for path in written:
            print(f"report: {path}", file=sys.stderr)
        return
    print(one_line_summary(report) if args.quiet else render_table(report))
    for note in notes:  # -q keeps the warnings
        if not args.quiet or note.startswith("warning:"):
            print(note)
    print(f"run directory: {run_dir}  (results.csv, results.parquet, run.json, controls.json, SHA256SUMS)")
    for path in written:
        print(f"report: {path}")
    print(f"exit code: {exit_code}")


def report_command(args: argparse.Namespace) -> int:
    """``hardnir report RUN_DIR... [--format F] [-o FILE] [--verify]``."""
    paths = [Path(p) for p in args.runs]
    if args.verify:
        return max(_verify(p) for p in paths)
    if len(paths) > 1:
        if args.format != "table" or args.output:
            raise ValueError(f"--format {args.format} and -o take one run directory (got {len(paths)})")
        return _drift(paths)
    from hardnir.reporters.model import load_report
    from hardnir.reporters.output import render
    from hardnir.reporters.reading import columns_read
    from hardnir.store.manifest import atomic_write

    text = render(args.format, load_report(paths[0], columns_read([args.format])))
    text = text if text.endswith("\n") else text + "\n"
    if args.output:
        target = Path(args.output)
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(target, text.encode("utf-8"))
        print(f"report: {target}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def _drift(paths: list[Path]) -> int:
    from hardnir.drift import drift
    from hardnir.report import drift_table
    from hardnir.store import read_run

    frames = [read_run(p) for p in paths]
    for older, newer, a, b in zip(frames, frames[1:], paths, paths[1:], strict=False):
        print(f"== {a} -> {b}")
        print(drift_table(drift(older, newer)))
    return 0


def _verify(run_dir: Path) -> int:
    from hardnir.store import RunDirError
    from hardnir.store.manifest import MANIFEST, verify_manifest

    if not run_dir.is_dir():
        raise RunDirError(f"run directory not found: {run_dir}")
    check = verify_manifest(run_dir)
    lines = [f"CHANGED  {n}" for n in check.changed] + [f"MISSING  {n}" for n in check.missing]
    lines += [f"UNLISTED {n} (not covered by {MANIFEST})" for n in check.unlisted]
    for line in lines:
        print(f"{run_dir}: {line}")
    verdict = "intact" if check.intact else "NOT intact"
    print(f"{run_dir}: {verdict}: {len(check.ok)} of {len(check.ok) + len(check.changed) + len(check.missing)} "
          f"files match {MANIFEST}")
    return 0 if check.intact else EXIT_TAMPERED
