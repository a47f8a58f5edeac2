"""The terminal table and the ``-q`` line read only the columns they show, and print the same bytes as from the
whole run; the report formats that show evidence read every column."""

from __future__ import annotations

import argparse
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest

from hardnir.reporters import commands, reading
from hardnir.reporters.model import RunReport, load_report
from hardnir.reporters.output import render
from hardnir.reporters.reading import COLUMNS_READ, SUMMARY_COLUMNS, TABLE_COLUMNS, columns_read
from hardnir.reporters.terminal import one_line_summary
from hardnir.results import make_row, read_run, write_run
from hardnir.store import RESULTS_PARQUET, RunDirError
from tests.synthetic_fleet import T0, make_fleet


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("runs")
    fleet = make_fleet(root / "fleet")
    dirs = {"audit": fleet.audit, "remediate": fleet.remediate, "after": fleet.after}
    rows = read_run(fleet.audit).to_dict("records")
    for index, row in enumerate(rows):  # the per-host table shows a platform column when the rows carry one
        row["platform"] = ["flatcar", "fedora-coreos", None][index % 3]
    dirs["platform"] = root / "platform"
    write_run(dirs["platform"], rows, {"run_id": "run-p", "runbook": "audit"})
    rollback = [make_row(run_id="rb", runbook="rollback", host=f"node-0{i}", control="core-rkt", phase="rollback",
                         status=status, severity="medium", message="=undone", started_at=T0 + timedelta(hours=i),
                         duration_s=0.5, evidence={"big": "x" * 1000})
                for i, status in enumerate(["restored", "unchanged", "error"], start=1)]
    dirs["rollback"] = root / "rollback"
    write_run(dirs["rollback"], rollback, {"run_id": "rb", "runbook": "rollback"})
    dirs["empty"] = root / "empty"
    write_run(dirs["empty"], [], {"run_id": "e", "runbook": "audit"})
    dirs["csv-only"] = root / "csv-only"
    write_run(dirs["csv-only"], rows, {"run_id": "run-p", "runbook": "audit"})
    (dirs["csv-only"] / RESULTS_PARQUET).unlink()
    return dirs


NAMES = ["audit", "remediate", "after", "platform", "rollback", "empty", "csv-only"]
SHOWN = {"table": lambda report: render("table", report), "summary": one_line_summary}


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("output", ["table", "summary"])
def test_the_table_and_the_summary_print_the_same_bytes_from_fewer_columns(runs: dict[str, Path], name: str,
                                                                           output: str) -> None:
    columns = columns_read([output])
    assert columns is not None and "evidence" not in columns
    part = load_report(runs[name], columns)
    assert set(part.frame.columns) <= columns and "evidence" not in part.frame.columns
    assert SHOWN[output](part) == SHOWN[output](load_report(runs[name]))


@pytest.mark.parametrize("name", NAMES)
def test_the_columns_read_are_typed_as_the_whole_run(runs: dict[str, Path], name: str) -> None:
    whole = read_run(runs[name])
    part = read_run(runs[name], TABLE_COLUMNS)
    pd.testing.assert_frame_equal(part, whole[[c for c in whole.columns if c in TABLE_COLUMNS]])


@pytest.mark.parametrize("fmt", ["junit", "sarif", "json", "html"])
def test_formats_that_show_evidence_read_every_column(fmt: str) -> None:
    assert COLUMNS_READ[fmt] is None
    assert columns_read([fmt]) is None and columns_read(["table", fmt, "summary"]) is None


def test_columns_read_together_are_the_union() -> None:
    assert columns_read(["summary"]) == SUMMARY_COLUMNS
    assert columns_read(["summary", "table"]) == TABLE_COLUMNS
    assert columns_read([]) == frozenset()


def test_an_unreadable_parquet_fails_as_read_run_fails(runs: dict[str, Path], tmp_path: Path) -> None:
    run = tmp_path / "run"
    write_run(run, read_run(runs["audit"]).to_dict("records"), {"run_id": "run-a", "runbook": "audit"})
    (run / RESULTS_PARQUET).write_bytes(b"PAR1 not really")
    with pytest.raises(RunDirError) as whole:
        read_run(run)
    with pytest.raises(RunDirError) as part:
        read_run(run, SUMMARY_COLUMNS)
    for error in (whole, part):
        assert str(error.value).startswith(f"cannot read results in {run}: ArrowInvalid: ")
        assert "not a parquet file" in str(error.value)
    with pytest.raises(RunDirError, match="run directory not found"):
        read_run(tmp_path / "absent", SUMMARY_COLUMNS)


@pytest.mark.parametrize(("fmt", "quiet", "reports", "wanted"), [
    ("table", False, [], TABLE_COLUMNS),
    ("table", True, [], SUMMARY_COLUMNS),
    ("table", True, ["table:{tmp}/t.txt"], TABLE_COLUMNS),
    ("table", False, ["junit:{tmp}/r.xml"], None),
    ("json", True, [], None),
])
def test_after_run_reads_what_its_outputs_show_and_prints_the_same(
        runs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        fmt: str, quiet: bool, reports: list[str], wanted: frozenset[str] | None) -> None:
    run = runs["remediate"]
    loaded: list[RunReport] = []

    def recording_load(run_dir: Path, columns: frozenset[str] | None = None) -> RunReport:
        loaded.append(load_report(run_dir, columns))
        return loaded[-1]

    monkeypatch.setattr("hardnir.reporters.model.load_report", recording_load)
    printed = []
    for every_column in (False, True):
        if every_column:
            monkeypatch.setattr(reading, "columns_read", lambda outputs: None)
        out = tmp_path / ("all" if every_column else "part")
        out.mkdir()
        args = argparse.Namespace(format=fmt, quiet=quiet,
                                  report=[spec.format(tmp=out) for spec in reports])
        commands.after_run(args, run, ["note", "warning: w"], 3)
        printed.append(capsys.readouterr().out.replace(str(out), "OUT"))
        printed[-1] += "".join(path.read_text(encoding="utf-8") for path in sorted(out.iterdir()))
    part, whole = loaded
    assert list(whole.frame.columns) == list(read_run(run).columns)
    assert set(part.frame.columns) == set(whole.frame.columns) & (wanted or set(whole.frame.columns))
    assert printed[0] == printed[1]
