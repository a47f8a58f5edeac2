"""The three notebooks executed with nbclient on real lab runs: an audit, a remediation in waves, then a later audit
after someone undid the fleet-socket fix on two hosts.

Parameters are injected papermill-style: a cell assigning them is inserted right after the cell tagged
``parameters``. Each notebook writes small JSON/CSV/PNG outputs into OUTPUT_DIR, which are compared here with the
library (``hardnir.results.compliance``, ``hardnir.drift``) computed on the same run directories. At the end the
fixture rolls the remediation back and resets every host it touched, so later tests see the seeded states.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from hardnir.analysis import auditor_csv, compliance_trend, fix_outcomes, needs_human, weighted_score
from hardnir.api import execute
from hardnir.drift import drift, flapping, time_to_fix
from hardnir.lab import LabInfo, lab_exec, reset_host
from hardnir.results import compliance, final_status, load_runs, read_run
from tests.notebook_support import assert_png, assert_same_table, pct, records, run_notebook, summary_of

pytestmark = pytest.mark.lab

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = REPO / "notebooks"
UNDO_FLEET_SOCKET = (
    "rm -f /etc/systemd/system/fleet.socket.d/10-root-only.conf; systemctl daemon-reload; "
    "systemctl stop fleet.service; systemctl restart fleet.socket; systemctl start fleet.service"
)

# ------------------------------------------------------------------------------------------ lab runs


@dataclass
class LabRuns:
    audit: Path
    remediate: Path
    after: Path
    undone: list[str]
    dead: list[str]


@pytest.fixture(scope="module")
def lab_runs(lab: LabInfo, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabRuns]:
    """audit -> remediate (waves of 5) -> undo the fleet-socket fix on two hosts -> audit again; then put the lab
    back: rollback of the remediation and a reset of every host that was changed."""
    root = tmp_path_factory.mktemp("notebook-runs")
    touched: set[str] = set()
    remediated: Path | None = None
    try:
        audit = execute("audit", lab.inventory_dir, out=root / "audit")
        remediation = execute("remediate", lab.inventory_dir, wave_size=5, out=root / "remediate")
        remediated = remediation.run_dir
        touched.update(str(r["host"]) for r in remediation.rows if r["changed"])
        fixed = sorted(str(r["host"]) for r in remediation.rows
                       if r["control"] == "fleet-socket" and r["phase"] == "fix" and r["status"] == "fixed")
        assert fixed, "the remediation fixed fleet-socket nowhere: nothing to undo"
        undone = fixed[:2]
        for name in undone:
            touched.add(name)
            done = lab_exec(name, UNDO_FLEET_SOCKET, timeout=60)
            assert done.returncode == 0, f"{name}: undo failed: {done.stderr.strip()}"
        after = execute("audit", lab.inventory_dir, out=root / "audit-after")
        yield LabRuns(audit.run_dir, remediation.run_dir, after.run_dir, undone, [h.name for h in lab.dead_hosts])
    finally:
        if remediated is not None:
            execute("rollback", lab.inventory_dir, target_run=remediated, out=root / "rollback")
        for name in sorted(touched):
            reset_host(name)


# ------------------------------------------------------------------------------------------ tests


def test_fleet_compliance_on_a_lab_audit(lab_runs: LabRuns, tmp_path: Path) -> None:
    out = tmp_path / "out"
    run_notebook("fleet_compliance.ipynb", {"RUN_DIR": str(lab_runs.audit), "OUTPUT_DIR": str(out)}, tmp_path)
    df = read_run(lab_runs.audit)
    summary = summary_of(out)
    expected = compliance(df)
    assert_same_table(summary["by_control"], records(expected["by_control"], "control"))
    assert_same_table(summary["by_host"], records(expected["by_host"], "host"))
    final = final_status(df)
    assert summary["weighted_score_pct"] == pytest.approx(weighted_score(final))
    assert summary["failing"] == int((final["status"] == "fail").sum())
    assert summary["errors"] == int((final["status"] == "error").sum())
    assert_png(out / "heatmap.png")
    matrix = pd.read_csv(out / "status-matrix.csv", index_col="host", keep_default_na=False)
    assert sorted(matrix.index) == sorted(df["host"].unique())
    for dead in lab_runs.dead:
        assert set(matrix.loc[dead]) == {"error"}
    findings = pd.read_csv(out / "findings.csv", keep_default_na=False)
    assert len(findings) == summary["failing"] + summary["errors"]
    assert (out / "auditor-results.csv").read_bytes() == (lab_runs.audit / "results.csv").read_bytes()
    assert (out / "auditor-results.csv").read_bytes() == auditor_csv(df)


def test_fleet_compliance_runs_its_own_audit_when_given_an_inventory(lab: LabInfo, lab_runs: LabRuns,
                                                                      tmp_path: Path) -> None:
    out = tmp_path / "out"
    run_notebook("fleet_compliance.ipynb", {"INVENTORY": str(lab.inventory_dir), "OUTPUT_DIR": str(out)}, tmp_path)
    summary = summary_of(out)
    run_dir = Path(summary["run_dir"])
    assert run_dir.is_relative_to(tmp_path), "the notebook's audit must land under its working directory"
    assert_same_table(summary["by_host"], records(compliance(read_run(run_dir))["by_host"], "host"))
    assert_png(out / "heatmap.png")


def test_remediation_review_on_a_lab_remediation(lab_runs: LabRuns, tmp_path: Path) -> None:
    out = tmp_path / "out"
    run_notebook("remediation_review.ipynb", {"RUN_DIR": str(lab_runs.remediate), "OUTPUT_DIR": str(out)},
                 tmp_path)
    df = read_run(lab_runs.remediate)
    summary = summary_of(out)
    before = compliance(df[df["phase"] == "check"])["by_control"].set_index("control")["compliance_pct"]
    after = compliance(df)["by_control"].set_index("control")["compliance_pct"]
    for control, row in summary["before_after"].items():
        assert pct(row["compliance_pct_before"]) == pytest.approx(before[control], nan_ok=True)
        assert pct(row["compliance_pct_after"]) == pytest.approx(after[control], nan_ok=True)
    assert summary["fix_outcomes"] == fix_outcomes(df).set_index("control").astype(int).to_dict("index")
    assert sum(row["fixed"] for row in summary["fix_outcomes"].values()) >= len(lab_runs.undone)
    assert summary["needs_human_hosts"] == sorted(needs_human(df)["host"].unique())
    assert set(lab_runs.dead) <= set(summary["needs_human_hosts"])
    waves = pd.read_csv(out / "waves.csv")
    assert waves["hosts"].sum() == df["host"].nunique()
    assert len(waves) >= 2 and waves["ran"].all()
    hosts = pd.read_csv(out / "host-timing.csv")
    assert set(hosts["host"]) == set(df["host"])
    assert (hosts["wall_s"] > 0).any()
    assert_png(out / "before-after.png")
    assert_png(out / "timing.png")


def test_drift_over_audit_remediation_and_a_later_audit(lab_runs: LabRuns, tmp_path: Path) -> None:
    out = tmp_path / "out"
    dirs = [str(lab_runs.audit), str(lab_runs.remediate), str(lab_runs.after)]
    run_notebook("drift.ipynb", {"RUN_DIRS": dirs, "OUTPUT_DIR": str(out)}, tmp_path)
    runs = load_runs(dirs)
    summary = summary_of(out)
    assert len(summary["run_ids"]) == 3
    previous, latest = summary["run_ids"][1], summary["run_ids"][2]
    expected = drift(runs[runs["run_id"] == previous], runs[runs["run_id"] == latest])
    regressed = expected[expected["change"] == "regressed"]
    got = {(r["host"], r["control"]) for r in summary["regressions"]}
    assert got == set(zip(regressed["host"], regressed["control"], strict=True))
    undone = {(host, "fleet-socket") for host in lab_runs.undone}
    assert undone <= got, "the undone fixes must show as regressions"
    flaps = {(r["host"], r["control"]) for r in summary["flapping"]}
    library = flapping(runs)
    assert flaps == set(zip(library["host"], library["control"], strict=True))
    assert undone <= flaps, "fail -> pass -> fail is a flapping control"
    ttf = time_to_fix(runs)
    assert summary["fixed_pairs"] == int(ttf["fixed_at"].notna().sum())
    assert summary["open_pairs"] == int(ttf["fixed_at"].isna().sum())
    trend = compliance_trend(runs)
    assert [t["compliance_pct"] for t in summary["trend"]] == pytest.approx(trend["compliance_pct"].tolist())
    assert trend["compliance_pct"].iloc[1] > trend["compliance_pct"].iloc[2], "the undo lowers compliance"
    assert_png(out / "trend.png")
