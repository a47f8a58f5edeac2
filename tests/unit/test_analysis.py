"""Unit tests for hardnir.analysis: the pure helpers behind the notebooks."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from hardnir import analysis
from hardnir.analysis import (
    COLUMN_DESCRIPTIONS,
    SEVERITY_WEIGHTS,
    auditor_csv,
    before_after,
    compliance_trend,
    consecutive_drift,
    data_dictionary,
    drift_between,
    final_rows,
    fix_outcomes,
    fix_reasons,
    host_timing,
    needs_human,
    resolve_path,
    run_order,
    status_matrix,
    transitions,
    waiver_findings,
    waiver_register,
    wave_plan,
    wave_timing,
    weighted_score,
    weighted_scores,
)
from hardnir.drift import drift
from hardnir.results import compliance, final_status, load_runs, make_row, read_run, to_frame, write_run
from hardnir.schema import COLUMNS, FIX_STATUSES
from hardnir.waivers import WAIVER_COLUMNS, Waiver, apply_waivers
from hardnir.waves import plan_waves, ran_wave, skipped_wave

T0 = datetime(2026, 1, 1, 8, 0, tzinfo=UTC)
TODAY = date(2026, 1, 10)


def r(host: str, control: str, status: str, *, phase: str = "check", severity: str = "high", run_id: str = "r1",
      runbook: str = "audit", at: datetime = T0, duration: float = 1.0, message: str = "",
      evidence: object = "", changed: bool = False, host_key: str = "") -> dict[str, object]:
    return make_row(run_id=run_id, runbook=runbook, host=host, control=control, phase=phase, status=status,
                    severity=severity, changed=changed, message=message, evidence=evidence, started_at=at,
                    duration_s=duration, host_key=host_key)


# ------------------------------------------------------------------------------------------ paths


class TestResolvePath:
    def test_absolute_paths_are_kept(self, tmp_path: Path) -> None:
        assert resolve_path(tmp_path / "x", start=Path("/")) == tmp_path / "x"

    def test_existing_relative_path_is_taken_from_start(self, tmp_path: Path) -> None:
        (tmp_path / "runs" / "a").mkdir(parents=True)
        assert resolve_path("runs/a", start=tmp_path) == tmp_path / "runs" / "a"

    def test_falls_back_to_the_repository_root(self, tmp_path: Path) -> None:
        (tmp_path / "pyproject.toml").write_text("", encoding="utf-8")
        (tmp_path / "notebooks").mkdir()
        assert resolve_path("runs/demo-audit", start=tmp_path / "notebooks") == tmp_path / "runs" / "demo-audit"

    def test_without_repository_stays_relative_to_start(self, tmp_path: Path) -> None:
        assert resolve_path("nowhere", start=tmp_path) == tmp_path / "nowhere"


# ------------------------------------------------------------------------------------------ final rows


def test_final_rows_prefer_verify_and_keep_details() -> None:
    df = to_frame([
        r("h1", "a", "fail", phase="check", runbook="remediate", evidence={"x": 1}),
        r("h1", "a", "fixed", phase="fix", runbook="remediate"),
        r("h1", "a", "pass", phase="verify", runbook="remediate", evidence={"x": 2}, message="now fine"),
        r("h2", "a", "error", phase="check", runbook="remediate", message="unreachable"),
    ])
    rows = final_rows(df)
    assert list(rows.columns) == list(df.columns)
    assert rows[["host", "status"]].astype(object).values.tolist() == [["h1", "pass"], ["h2", "error"]]
    assert rows["message"].tolist() == ["now fine", "unreachable"]
    assert rows["evidence"].tolist()[0] == '{"x": 2}'
    final = final_status(df)
    assert rows["status"].astype(object).tolist() == final["status"].astype(object).tolist()


# ------------------------------------------------------------------------------------------ scores


def scored_frame() -> pd.DataFrame:
    return to_frame([
        r("h1", "crit", "pass", severity="critical"),
        r("h2", "crit", "fail", severity="critical"),
        r("h1", "low", "fail", severity="low"),
        r("h2", "low", "waived", severity="low"),
        r("h1", "med", "not_applicable", severity="medium"),
        r("h2", "med", "error", severity="medium"),
    ])


class TestWeightedScore:
    def test_formula(self) -> None:
        final = final_status(scored_frame())
        # compliant: crit pass (8) + low waived (1); applicable: 8 + 8 + 1 + 1
        assert weighted_score(final) == pytest.approx(100 * 9 / 18)
        assert weighted_score(final, waived_is_compliant=False) == pytest.approx(100 * 8 / 18)

    def test_equal_weights_give_compliance_pct(self) -> None:
        df = scored_frame()
        counts = compliance(df)["by_host"]
        overall = 100 * (counts["pass"].sum() + counts["waived"].sum()) / (
            counts["pass"].sum() + counts["fail"].sum() + counts["waived"].sum())
        assert weighted_score(final_status(df), dict.fromkeys(SEVERITY_WEIGHTS, 1)) == pytest.approx(overall)

    def test_nothing_applicable_is_nan(self) -> None:
        final = final_status(to_frame([r("h1", "a", "error"), r("h1", "b", "not_applicable")]))
        assert math.isnan(weighted_score(final))
        assert math.isnan(weighted_score(final_status(to_frame([]))))

    def test_missing_weight_is_an_error(self) -> None:
        with pytest.raises(KeyError, match="critical"):
            weighted_score(final_status(scored_frame()), {"low": 1, "medium": 2, "high": 4})

    def test_per_host(self) -> None:
        table = weighted_scores(final_status(scored_frame()), "host")
        assert table["host"].tolist() == ["h1", "h2"]
        assert table["applicable_weight"].tolist() == [9.0, 9.0]
        assert table["score_pct"].tolist() == pytest.approx([100 * 8 / 9, 100 * 1 / 9])


# ------------------------------------------------------------------------------------------ heatmap


class TestStatusMatrix:
    def test_order_and_missing_cells(self) -> None:
        final = final_status(to_frame([
            r("h2", "a", "pass", severity="low"),
            r("h1", "b", "fail", severity="critical"),
            r("h1", "a", "waived", severity="low"),
            r("h1", "c", "error", severity="critical"),
        ]))
        matrix = status_matrix(final)
        assert list(matrix.index) == ["h1", "h2"]
        assert list(matrix.columns) == ["b", "c", "a"]  # critical first, then by id
        assert matrix.loc["h2", "b"] == ""
        assert matrix.loc["h1", "a"] == "waived"
        assert set(matrix.to_numpy().ravel()) <= set(analysis.STATUS_COLOURS)

    def test_explicit_axes(self) -> None:
        final = final_status(to_frame([r("h1", "a", "pass")]))
        matrix = status_matrix(final, hosts=["h0", "h1"], controls=["z", "a"])
        assert matrix.to_numpy().tolist() == [["", ""], ["", "pass"]]

    def test_refuses_several_runs(self) -> None:
        final = final_status(to_frame([r("h1", "a", "pass"), r("h1", "a", "fail", run_id="r2")]))
        with pytest.raises(ValueError, match="one run"):
            status_matrix(final)


# ------------------------------------------------------------------------------------------ auditor CSV


def test_data_dictionary_covers_every_column() -> None:
    assert set(COLUMNS) <= set(COLUMN_DESCRIPTIONS)
    table = data_dictionary([*COLUMNS, "mystery"])
    assert table["column"].tolist() == [*COLUMNS, "mystery"]
    assert table["meaning"].iloc[-1] == "extra column"


def test_auditor_csv_is_byte_identical_to_results_csv(tmp_path: Path) -> None:
    rows = [
        r("h1", "a", "fail", message="=HYPERLINK(\"x\")", evidence={"cmd": "@SUM(1)", "n": 3}, host_key="SHA256:x"),
        r("h2", "a", "pass", message="-1 is fine", duration=0.123456, changed=True, host_key="+abc"),
        r("h3", "a", "error", message="ünïcode, \"quoted\"", host_key=""),
    ]
    write_run(tmp_path, rows, {"run_id": "r1"})
    df = read_run(tmp_path)
    assert auditor_csv(df) == (tmp_path / "results.csv").read_bytes()
    # a subset keeps the format (the findings export)
    subset = auditor_csv(df[df["status"] == "fail"]).decode("utf-8").splitlines()
    assert subset[0].split(",")[: len(COLUMNS)] == list(COLUMNS)
    assert "'=HYPERLINK" in subset[1]


def test_auditor_csv_refuses_reordered_columns() -> None:
    df = to_frame([r("h1", "a", "pass")])
    with pytest.raises(ValueError, match="result columns"):
        auditor_csv(df[["host", *[c for c in df.columns if c != "host"]]])


# ------------------------------------------------------------------------------------------ waivers


class TestWaiverColumns:
    @pytest.mark.parametrize(
        ("approver", "expires"),
        [("j.doe", date(2026, 2, 1)), (None, date(2026, 2, 1)), ("j.doe", None), (None, None)],
    )
    def test_columns_carry_the_waiver(self, approver: str | None, expires: date | None) -> None:
        reason = "CI runners need it; until migration (ticket 42), approver (x)"
        waiver = Waiver("a", ("h1",), (), False, reason, approver, expires)
        rows = apply_waivers([r("h1", "a", "fail", message="socket is 0666")], [waiver], {"h1": ()}, TODAY)
        table = waiver_findings(to_frame(rows), TODAY)
        assert table[["state", "reason", "approver", "expires"]].astype(object).values.tolist() == [
            ["waived", reason, approver, expires]]

    def test_every_row_gets_the_columns_even_without_waivers(self) -> None:
        rows = apply_waivers([r("h1", "a", "fail"), r("h1", "b", "pass")], [], {}, TODAY)
        assert all(row["waiver_reason"] == row["waiver_approver"] == row["waiver_expires"] == "" for row in rows)
        assert list(to_frame(rows).columns[len(COLUMNS):]) == ["host_key", *WAIVER_COLUMNS]
        assert waiver_findings(to_frame(rows), TODAY).empty

    def test_findings_table(self) -> None:
        rows = apply_waivers(
            [r("h1", "a", "fail"), r("h2", "a", "fail"), r("h3", "a", "fail"), r("h4", "a", "pass")],
            [Waiver("a", ("h1",), (), False, "soon", "x", date(2026, 1, 12)),
             Waiver("a", ("h2",), (), False, "gone", None, date(2026, 1, 1)),
             Waiver("a", ("h3",), (), False, "forever", None, None)],
            {}, TODAY)
        table = waiver_findings(to_frame(rows), TODAY)
        assert table[["host", "status", "state", "reason"]].astype(object).values.tolist() == [
            ["h2", "fail", "expired", "gone"],
            ["h1", "waived", "waived", "soon"],
            ["h3", "waived", "waived", "forever"],
        ]
        assert table["days_left"].tolist()[:2] == [-9.0, 2.0]
        assert math.isnan(table["days_left"].iloc[2])

    def test_expired_waiver_is_named_in_the_columns(self) -> None:
        waivers = [Waiver("a", (), ("lab",), False, "scheduled", "a.smith", date(2026, 1, 1)),
                   Waiver("b", ("h1",), (), False, "other control", "x", date(2026, 1, 1))]
        rows = apply_waivers([r("h1", "a", "fail"), r("h2", "a", "pass")], waivers, {"h1": ("lab",)}, TODAY)
        table = waiver_findings(to_frame(rows), TODAY)
        assert table[["host", "state", "reason", "approver"]].astype(object).values.tolist() == [
            ["h1", "expired", "scheduled", "a.smith"]]
        assert rows[0]["status"] == "fail" and rows[0]["waiver_expires"] == "2026-01-01"
        assert waiver_findings(to_frame([r("h1", "a", "pass")]), TODAY).empty

    def test_register(self) -> None:
        waivers = [
            Waiver("a", (), (), True, "everyone", None, None),
            Waiver("b", ("h1", "h2"), ("edge",), False, "later", "y", TODAY + timedelta(days=90)),
            Waiver("c", ("h1",), (), False, "soon", "x", TODAY + timedelta(days=30)),
            Waiver("d", (), ("db",), False, "past", None, TODAY - timedelta(days=1)),
        ]
        table = waiver_register(waivers, TODAY, soon_days=30)
        assert table["control"].tolist() == ["d", "c", "b", "a"]
        assert table["state"].tolist() == ["expired", "expiring", "active", "permanent"]
        assert table["scope"].tolist() == ["groups: db", "hosts: h1", "hosts: h1, h2; groups: edge", "all hosts"]
        assert waiver_register([], TODAY).empty


# ------------------------------------------------------------------------------------------ remediation


def remediation() -> pd.DataFrame:
    """h1: fixed a (fail->pass), unchanged b; h2: fix_failed a, blocked b; h3 unreachable."""
    t = T0
    rows = [
        r("h1", "a", "fail", runbook="remediate", at=t, duration=2.0),
        r("h1", "b", "pass", runbook="remediate", at=t, duration=2.0),
        r("h1", "a", "fixed", phase="fix", runbook="remediate", at=t + timedelta(seconds=2), duration=8.0,
          changed=True, message="applied"),
        r("h1", "b", "unchanged", phase="fix", runbook="remediate", at=t + timedelta(seconds=7), duration=3.0,
          message="already compliant"),
        r("h1", "a", "pass", phase="verify", runbook="remediate", at=t + timedelta(seconds=8), duration=1.5),
        r("h1", "b", "pass", phase="verify", runbook="remediate", at=t + timedelta(seconds=8), duration=1.5),
        r("h2", "a", "fail", runbook="remediate", at=t, duration=1.0),
        r("h2", "b", "fail", runbook="remediate", at=t, duration=1.0, severity="critical"),
        r("h2", "a", "fix_failed", phase="fix", runbook="remediate", at=t + timedelta(seconds=1), duration=3.0,
          message="fix failed and was undone"),
        r("h2", "b", "blocked", phase="fix", runbook="remediate", at=t + timedelta(seconds=2), duration=2.0,
          message="lockout guard", severity="critical"),
        r("h2", "a", "fail", phase="verify", runbook="remediate", at=t + timedelta(seconds=3), duration=1.0),
        r("h2", "b", "fail", phase="verify", runbook="remediate", at=t + timedelta(seconds=3), duration=1.0,
          severity="critical"),
    ]
    for control in ("a", "b"):
        sev = "critical" if control == "b" else "high"
        at = t + timedelta(seconds=40)
        rows += [r("h3", control, "error", phase="check", runbook="remediate", at=at, duration=0.5,
                   message="connection refused", severity=sev),
                 r("h3", control, "error", phase="fix", runbook="remediate", at=at, duration=0.5,
                   message="not fixed: the check could not run", severity=sev),
                 r("h3", control, "error", phase="verify", runbook="remediate", at=at, duration=0.5,
                   message="connection refused", severity=sev)]
    return to_frame(rows)


META = {
    "run_id": "r1",
    "hosts": ["h1", "h2", "h3"],
    "options": {"wave_size": 2},
    "waves": [ran_wave(1, 2, ["h1", "h2"], ["h2"]), ran_wave(2, 2, ["h3"], ["h3"])],
}


class TestRemediation:
    def test_before_after(self) -> None:
        table = before_after(remediation())
        assert list(table.columns) == ["run_id", "host", "control", "severity", "check", "fix", "verify", "changed",
                                       "fix_message"]
        got = {(h, c): (a, b, v) for h, c, a, b, v in
               table[["host", "control", "check", "fix", "verify"]].astype(object).values.tolist()}
        assert got[("h1", "a")] == ("fail", "fixed", "pass")
        assert got[("h2", "b")] == ("fail", "blocked", "fail")
        assert got[("h3", "a")] == ("error", "error", "error")
        assert table.loc[(table["host"] == "h1") & (table["control"] == "a"), "changed"].item() is True
        assert str(table.loc[(table["host"] == "h2") & (table["control"] == "b"), "severity"].item()) == "critical"

    def test_before_after_of_an_audit_has_empty_phases(self) -> None:
        table = before_after(to_frame([r("h1", "a", "pass")]))
        assert table[["check", "fix", "verify"]].values.tolist() == [["pass", "", ""]]
        assert table["fix_message"].tolist() == [""]

    def test_transitions(self) -> None:
        table = transitions(before_after(remediation()))
        rows = {(c, a, b): n for c, a, b, n in table.astype(object).values.tolist()}
        assert rows == {("a", "fail", "pass"): 1, ("a", "fail", "fail"): 1, ("a", "error", "error"): 1,
                        ("b", "pass", "pass"): 1, ("b", "fail", "fail"): 1, ("b", "error", "error"): 1}

    def test_fix_outcomes(self) -> None:
        table = fix_outcomes(remediation())
        assert list(table.columns) == ["control", *FIX_STATUSES]
        counts = table.set_index("control")
        assert counts.loc["a"].to_dict() == {"fixed": 1, "would_fix": 0, "unchanged": 0, "fix_failed": 1,
                                             "blocked": 0, "error": 1}
        assert counts.at["b", "blocked"] == 1
        empty = fix_outcomes(to_frame([r("h1", "a", "pass")]))
        assert empty.empty and list(empty.columns) == ["control", *FIX_STATUSES]

    def test_fix_reasons(self) -> None:
        table = fix_reasons(remediation())
        assert table["status"].tolist() == ["fixed", "unchanged", "fix_failed", "blocked", "error", "error"]
        assert table.loc[table["status"] == "blocked", "message"].item() == "lockout guard"
        assert table.loc[table["status"] == "error", "host_names"].tolist() == ["h3", "h3"]

    def test_needs_human_merges_phases(self) -> None:
        table = needs_human(remediation())
        got = table[["host", "control", "status", "phases", "message"]].astype(object).values.tolist()
        assert got == [
            ["h2", "a", "fix_failed", "fix", "fix failed and was undone"],
            ["h2", "b", "blocked", "fix", "lockout guard"],
            ["h3", "a", "error", "check,fix,verify", "connection refused"],
            ["h3", "b", "error", "check,fix,verify", "connection refused"],
        ]
        assert needs_human(to_frame([r("h1", "a", "pass")])).empty


class TestTiming:
    def test_host_timing_splits_wall_time_by_phase(self) -> None:
        table = host_timing(remediation()).set_index("host")
        assert table.loc["h1", "wall_s"] == pytest.approx(10.0)  # fix of a ends at 2 + 8
        assert [table.at["h1", c] for c in ("check_s", "fix_s", "verify_s")] == pytest.approx([2.0, 6.0, 2.0])
        assert table.loc["h2", "wall_s"] == pytest.approx(4.0)
        assert "rollback_s" not in table.columns
        sums = table["check_s"] + table["fix_s"] + table["verify_s"]
        assert sums.tolist() == pytest.approx(table["wall_s"].tolist())

    def test_unreachable_host_time_is_check_time(self) -> None:
        df = remediation()
        table = host_timing(df[df["host"] == "h3"])
        assert table[["wall_s", "check_s", "fix_s", "verify_s"]].values.tolist() == [[0.5, 0.5, 0.0, 0.0]]

    def test_audit_has_only_check_time(self) -> None:
        table = host_timing(to_frame([r("h1", "a", "pass", duration=3.0), r("h1", "b", "pass", duration=4.0)]))
        assert list(table.columns) == ["run_id", "host", "started_at", "finished_at", "wall_s", "check_s"]
        assert table["wall_s"].tolist() == [4.0]

    def test_wave_plan(self) -> None:
        plan = wave_plan(META)
        assert plan[["host", "wave", "ran"]].astype(object).values.tolist() == [
            ["h1", 1, True], ["h2", 1, True], ["h3", 2, True]]

    def test_wave_plan_stopped_and_defaults(self) -> None:
        stop = "not run: remediation stopped after wave 1 because 100% of its hosts failed (limit 10%)"
        meta = {"hosts": ["a", "b", "c"],
                "waves": [ran_wave(1, 3, ["a"], ["a"]), skipped_wave(2, 3, ["b"], stop),
                          skipped_wave(3, 3, ["c"], stop)]}
        plan = wave_plan(meta)
        assert plan["wave"].tolist() == [1, 2, 3]
        assert plan["ran"].tolist() == [True, False, False]
        assert plan["note"].tolist() == ["wave 1/3: 1 host(s), 1 failed (100%)", stop, stop]
        single = wave_plan({"hosts": ["a", "b"], "waves": []})  # audits and older runs: one wave of every host
        assert single["wave"].tolist() == [1, 1]
        assert wave_plan({}).empty

    def test_plan_waves_cuts_like_the_runner(self) -> None:
        assert plan_waves(["a", "b", "c"], 2) == [["a", "b"], ["c"]]
        assert plan_waves(["a", "b"], None) == [["a", "b"]]
        assert plan_waves([], 3) == []

    def test_wave_timing(self) -> None:
        table = wave_timing(remediation(), META)
        assert table["wave"].tolist() == [1, 2]
        assert table["hosts"].tolist() == [2, 1]
        assert table["needs_human"].tolist() == [1, 1]
        assert table["wall_s"].tolist() == pytest.approx([10.0, 0.5])
        assert table["host_s"].tolist() == pytest.approx([14.0, 0.5])


# ------------------------------------------------------------------------------------------ trends


def three_runs(tmp_path: Path) -> pd.DataFrame:
    states = [
        ("r-a", "audit", T0, {"h1": "fail", "h2": "pass"}),
        ("r-c", "audit", T0 + timedelta(days=2), {"h1": "fail", "h2": "fail"}),
        ("r-b", "audit", T0 + timedelta(days=1), {"h1": "pass", "h2": "pass"}),
    ]
    for run_id, runbook, start, hosts in states:
        rows = [r(h, "a", s, run_id=run_id, runbook=runbook, at=start) for h, s in hosts.items()]
        rows.append(r("h1", "b", "pass", run_id=run_id, runbook=runbook, at=start, severity="low"))
        write_run(tmp_path / run_id, rows, {"run_id": run_id, "runbook": runbook, "started_at": start.isoformat()})
    return load_runs(tmp_path)


def test_compliance_trend_matches_compliance_per_run(tmp_path: Path) -> None:
    runs = three_runs(tmp_path)
    trend = compliance_trend(runs)
    assert trend["run_id"].tolist() == ["r-a", "r-b", "r-c"] == run_order(runs)
    for row in trend.to_dict("records"):
        one = runs[runs["run_id"] == row["run_id"]]
        by_host = compliance(one)["by_host"]
        good = by_host["pass"].sum() + by_host["waived"].sum()
        applicable = good + by_host["fail"].sum()
        assert row["compliance_pct"] == pytest.approx(100 * good / applicable)
        assert row["weighted_score_pct"] == pytest.approx(weighted_score(final_status(one)))
    assert trend["pass"].tolist() == [2, 3, 1]
    assert trend["compliance_pct"].tolist() == pytest.approx([200 / 3, 100.0, 100 / 3])


def test_consecutive_drift(tmp_path: Path) -> None:
    runs = three_runs(tmp_path)
    steps = consecutive_drift(runs)
    assert list(steps.columns[:3]) == ["from_run_id", "to_run_id", "to_runbook"]
    got = [(a, b, h, str(c)) for a, b, h, c in steps[["from_run_id", "to_run_id", "host", "change"]].values]
    assert got == [("r-a", "r-b", "h1", "fixed"), ("r-b", "r-c", "h1", "regressed"), ("r-b", "r-c", "h2", "regressed")]
    last = drift(runs[runs["run_id"] == "r-b"], runs[runs["run_id"] == "r-c"])
    assert len(steps[steps["to_run_id"] == "r-c"]) == len(last)


def test_consecutive_drift_of_one_run_is_empty(tmp_path: Path) -> None:
    runs = three_runs(tmp_path)
    steps = consecutive_drift(runs[runs["run_id"] == "r-a"])
    assert steps.empty
    assert list(steps.columns[:3]) == ["from_run_id", "to_run_id", "to_runbook"]


def test_drift_between_sees_the_state_a_rollback_leaves(tmp_path: Path) -> None:
    start = T0
    audit = [r("h1", "a", "fail", run_id="r1", at=start)]
    fix = [r("h1", "a", "fail", run_id="r2", runbook="remediate", at=start + timedelta(hours=1)),
           r("h1", "a", "fixed", phase="fix", run_id="r2", runbook="remediate", at=start + timedelta(hours=1)),
           r("h1", "a", "pass", phase="verify", run_id="r2", runbook="remediate", at=start + timedelta(hours=1))]
    undo = [r("h1", "a", "restored", phase="rollback", run_id="r3", runbook="rollback",
              at=start + timedelta(hours=2))]
    for run_id, rows, at in (("r1", audit, 0), ("r2", fix, 1), ("r3", undo, 2)):
        write_run(tmp_path / run_id, rows, {"run_id": run_id, "started_at": (start + timedelta(hours=at)).isoformat()})
    runs = load_runs(tmp_path)
    alone = drift(runs[runs["run_id"] == "r2"], runs[runs["run_id"] == "r3"])
    assert alone["change"].astype(str).tolist() == ["gone"]  # the rollback run alone knows no state
    between = drift_between(runs, "r2", "r3")
    assert between[["old_status", "new_status", "change"]].astype(str).values.tolist() == [
        ["pass", "fail", "regressed"]]
    steps = consecutive_drift(runs)
    assert steps[["from_run_id", "to_run_id", "change"]].astype(str).values.tolist() == [
        ["r1", "r2", "fixed"], ["r2", "r3", "regressed"]]


# ------------------------------------------------------------------------------------------ notebook helpers


class TestNotebookHelpers:
    def test_jsonable(self) -> None:
        import numpy as np

        value = {"a": np.int64(3), "b": [math.nan, pd.NA, pd.NaT, None], "c": np.float64(1.5),
                 "d": date(2026, 1, 2), "e": pd.Timestamp("2026-01-02T03:04:05Z"), 7: (True, "x"), "f": Path("/p")}
        assert analysis.jsonable(value) == {"a": 3, "b": [None, None, None, None], "c": 1.5, "d": "2026-01-02",
                                            "e": "2026-01-02T03:04:05+00:00", "7": [True, "x"], "f": "/p"}
        assert isinstance(analysis.jsonable(np.int64(3)), int)

    def test_table_records(self) -> None:
        frame = pd.DataFrame({"control": ["a", "b"], "pass": [1, 2], "pct": [50.0, math.nan]})
        assert analysis.table_records(frame, "control") == {"a": {"pass": 1, "pct": 50.0},
                                                            "b": {"pass": 2, "pct": None}}

    def test_rounded_only_touches_floats(self) -> None:
        frame = pd.DataFrame({"name": ["x"], "n": [3], "pct": [66.66666]})
        out = analysis.rounded(frame, 1)
        assert out["pct"].tolist() == [66.7] and out["n"].tolist() == [3] and frame["pct"].tolist() == [66.66666]

    def test_save_figure_writes_a_png_and_closes_it(self, tmp_path: Path) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots()
        ax.plot([0, 1], [0, 1])
        path = analysis.save_figure(fig, tmp_path, "line.png", display_it=False)
        assert path == tmp_path / "line.png" and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert not plt.get_fignums()

    def test_show_displays_a_titled_table(self, monkeypatch: pytest.MonkeyPatch) -> None:
        import IPython.display

        shown: list[object] = []
        monkeypatch.setattr(IPython.display, "display", shown.append)
        analysis.show(pd.DataFrame({"host": ["h1"], "pass": [1]}), "Per host")
        title, table = shown
        assert isinstance(title, IPython.display.Markdown) and title.data == "**Per host**"
        assert isinstance(table, pd.DataFrame) and table.index.name == "host" and table["pass"].tolist() == [1]

    def test_pretty_evidence(self) -> None:
        assert analysis.pretty_evidence('{"b": 1, "a": [1]}') == '{\n  "a": [\n    1\n  ],\n  "b": 1\n}'
        assert analysis.pretty_evidence("not json") == "not json"
        assert analysis.pretty_evidence('"' + "x" * 50 + '"', limit=10) == '"xxxxxxxxx ...'
