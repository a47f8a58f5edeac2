"""The three notebooks, executed with nbclient on a synthetic fleet (no lab, no SSH).

The run directories are the synthetic fleet of :mod:`tests.synthetic_fleet`. Each notebook gets its parameters
injected in a cell after its ``parameters`` cell (papermill style) and writes small JSON/CSV/PNG outputs, which
are compared with the library computed here.
"""

from __future__ import annotations

import ast
import json
import shutil
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import nbformat
import pandas as pd
import pytest

from hardnir import analysis
from hardnir.analysis import (
    SEVERITY_WEIGHTS,
    auditor_csv,
    compliance_trend,
    fix_outcomes,
    needs_human,
    weighted_score,
)
from hardnir.drift import drift, flapping, time_to_fix
from hardnir.results import compliance, final_status, load_runs, read_run
from hardnir.schema import COLUMNS
from tests.notebook_support import assert_png, read_nb, records, run_notebook
from tests.synthetic_fleet import CONTROLS, HOSTS, TODAY, Fleet, make_fleet

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = REPO / "notebooks"


# ------------------------------------------------------------------------------------------ notebook runner


def close(a: dict[str, dict[str, Any]], b: dict[str, dict[str, Any]]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert a[key].keys() == b[key].keys(), key
        for col, value in a[key].items():
            other = b[key][col]
            if isinstance(value, float) and isinstance(other, float):
                assert value == pytest.approx(other), (key, col)
            else:
                assert value == other, (key, col)


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Fleet:
    return make_fleet(tmp_path_factory.mktemp("fleet"))


@pytest.fixture
def workdir(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path
    shutil.rmtree(tmp_path / "runs", ignore_errors=True)


# ------------------------------------------------------------------------------------------ tests


def test_synthetic_fleet_has_every_status(fleet: Fleet) -> None:
    audit = read_run(fleet.audit)
    assert set(audit["status"].astype(object)) == {"pass", "fail", "not_applicable", "error", "waived"}
    fixes = read_run(fleet.remediate)
    assert set(fixes.loc[fixes["phase"] == "fix", "status"].astype(object)) == {
        "fixed", "unchanged", "fix_failed", "blocked", "error"}


def test_fleet_compliance(fleet: Fleet, workdir: Path) -> None:
    out = workdir / "out"
    run_notebook("fleet_compliance.ipynb",
                 {"RUN_DIR": str(fleet.audit), "WAIVERS": str(fleet.waivers), "OUTPUT_DIR": str(out)}, workdir)
    df = read_run(fleet.audit)
    expected = compliance(df)
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary["run_id"] == "run-a"
    close(summary["by_control"], records(expected["by_control"], "control"))
    close(summary["by_host"], records(expected["by_host"], "host"))
    final = final_status(df)
    assert summary["weighted_score_pct"] == pytest.approx(weighted_score(final, SEVERITY_WEIGHTS))
    # by hand: critical fleet-socket 1/3 pass, high core-docker 1 pass + 1 waived of 3, medium core-rkt 0/2,
    # high sshd-socket 2/3 -> (8*1 + 4*2 + 0 + 4*2) / (8*3 + 4*3 + 2*2 + 4*3)
    assert summary["weighted_score_pct"] == pytest.approx(100 * 24 / 52)
    assert summary["strict_score_pct"] == pytest.approx(100 * 20 / 52)
    # the heatmap and its matrix
    assert_png(out / "heatmap.png")
    matrix = pd.read_csv(out / "status-matrix.csv", index_col="host", keep_default_na=False)
    assert matrix.loc["node-02", "core-docker"] == "waived"
    assert matrix.loc["node-04", "sshd-socket"] == "error"
    assert list(matrix.index) == list(HOSTS)
    # failing findings carry their evidence
    findings = pd.read_csv(out / "findings.csv", keep_default_na=False)
    assert list(findings.columns[: len(COLUMNS)]) == list(COLUMNS)
    bad = final[final["status"].isin(["fail", "error"])]
    assert len(findings) == len(bad)
    assert findings.loc[findings["status"] == "fail", "evidence"].str.contains("0666").all()
    # waivers: from the rows and from the file
    waived = pd.read_csv(out / "waived-findings.csv", keep_default_na=False)
    states = dict(zip(waived["host"] + "/" + waived["state"], waived["expires"], strict=True))
    assert states == {"node-02/waived": (TODAY + timedelta(days=10)).isoformat(),
                      "node-03/expired": (TODAY - timedelta(days=3)).isoformat()}
    register = pd.read_csv(out / "waiver-register.csv", keep_default_na=False)
    assert register["state"].tolist() == ["expired", "expiring", "permanent"]
    # the auditor CSV is results.csv, column for column, and comes with a data dictionary
    exported = (out / "auditor-results.csv").read_bytes()
    assert exported == (fleet.audit / "results.csv").read_bytes() == auditor_csv(df)
    dictionary = pd.read_csv(out / "data-dictionary.csv")
    assert dictionary["column"].tolist()[: len(COLUMNS)] == list(COLUMNS)


@pytest.mark.parametrize("name", ["fleet_compliance.ipynb", "remediation_review.ipynb", "drift.ipynb"])
def test_notebooks_define_no_helper_the_library_has(name: str) -> None:
    nb = read_nb(NOTEBOOKS / name, as_version=4)
    defined = {node.name for c in nb.cells if c.cell_type == "code"
               for node in ast.walk(ast.parse(c.source)) if isinstance(node, ast.FunctionDef)}
    assert not defined & set(dir(analysis)), f"{name} redefines library helpers: {defined & set(dir(analysis))}"
    assert not defined & {"show", "rounded", "save_figure", "jsonable", "table_records", "pretty"}


@pytest.mark.parametrize("name", ["fleet_compliance.ipynb", "remediation_review.ipynb", "drift.ipynb"])
def test_notebooks_are_saved_clean_with_a_parameters_cell(name: str) -> None:
    nb = read_nb(NOTEBOOKS / name, as_version=4)
    nbformat.validate(nb)
    assert nb.metadata["kernelspec"]["name"] == "python3"
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.outputs == [] and c.execution_count is None for c in code), "clear the outputs before saving"
    assert "parameters" in code[0].metadata.get("tags", []), "the first code cell holds the parameters"
    assert "OUTPUT_DIR = " in code[0].source


def test_fleet_compliance_default_parameters_point_at_the_demo() -> None:
    nb = read_nb(NOTEBOOKS / "fleet_compliance.ipynb", as_version=4)
    params = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    assert 'RUN_DIR = "runs/demo-audit"' in params.source
    assert "INVENTORY = None" in params.source


def test_remediation_review(fleet: Fleet, workdir: Path) -> None:
    out = workdir / "out"
    run_notebook("remediation_review.ipynb", {"RUN_DIR": str(fleet.remediate), "OUTPUT_DIR": str(out)}, workdir)
    df = read_run(fleet.remediate)
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    before = compliance(df[df["phase"] == "check"])["by_control"].set_index("control")["compliance_pct"]
    after = compliance(df)["by_control"].set_index("control")["compliance_pct"]
    for control in CONTROLS:
        assert summary["before_after"][control]["compliance_pct_before"] == pytest.approx(before[control])
        assert summary["before_after"][control]["compliance_pct_after"] == pytest.approx(after[control])
    assert summary["before_after"]["core-rkt"]["compliance_pct_after"] == pytest.approx(100.0)
    outcomes = fix_outcomes(df).set_index("control").astype(int).to_dict("index")
    assert summary["fix_outcomes"] == outcomes
    assert summary["fix_outcomes"]["fleet-socket"]["fix_failed"] == 1
    assert summary["fix_outcomes"]["core-docker"]["blocked"] == 1
    assert summary["needs_human_hosts"] == ["node-02", "node-03", "node-04"]
    assert sorted(needs_human(df)["host"].unique()) == summary["needs_human_hosts"]
    waves = pd.read_csv(out / "waves.csv")
    assert waves["wave"].tolist() == [1, 2]
    assert waves["hosts"].tolist() == [2, 2]
    assert waves["needs_human"].tolist() == [1, 2]
    hosts = pd.read_csv(out / "host-timing.csv")
    assert dict(zip(hosts["host"], hosts["wave"], strict=True)) == {"node-01": 1, "node-02": 1, "node-03": 2,
                                                                   "node-04": 2}
    phases = hosts["check_s"] + hosts["fix_s"] + hosts["verify_s"]
    assert phases.tolist() == pytest.approx(hosts["wall_s"].tolist())
    assert_png(out / "before-after.png")
    assert_png(out / "timing.png")


def test_drift(fleet: Fleet, workdir: Path) -> None:
    out = workdir / "out"
    dirs = [str(fleet.audit), str(fleet.remediate), str(fleet.after)]
    run_notebook("drift.ipynb", {"RUN_DIRS": dirs, "OUTPUT_DIR": str(out)}, workdir)
    runs = load_runs(dirs)
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary["run_ids"] == ["run-a", "run-r", "run-b"]
    expected = drift(runs[runs["run_id"] == "run-r"], runs[runs["run_id"] == "run-b"])
    regressed = expected[expected["change"] == "regressed"]
    got = {(r["host"], r["control"]) for r in summary["regressions"]}
    assert got == set(zip(regressed["host"], regressed["control"], strict=True))
    assert got == {("node-01", "fleet-socket"), ("node-03", "core-rkt")}
    flaps = {(r["host"], r["control"]) for r in summary["flapping"]}
    assert flaps == set(zip(flapping(runs)["host"], flapping(runs)["control"], strict=True))
    assert flaps == {("node-01", "fleet-socket"), ("node-03", "core-rkt")}
    ttf = time_to_fix(runs)
    assert summary["fixed_pairs"] == int(ttf["fixed_at"].notna().sum())
    assert summary["open_pairs"] == int(ttf["fixed_at"].isna().sum())
    trend = compliance_trend(runs)
    assert [t["compliance_pct"] for t in summary["trend"]] == pytest.approx(trend["compliance_pct"].tolist())
    assert_png(out / "trend.png")
