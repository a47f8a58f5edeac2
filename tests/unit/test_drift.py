"""Unit tests for hardnir.drift: drift between runs, flapping controls and time to fix."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from hardnir.drift import drift, flapping, latest_final, time_to_fix
from hardnir.results import load_runs, make_row, to_frame, write_run

T0 = datetime(2026, 1, 1, 8, 0, tzinfo=UTC)
DAY = timedelta(days=1)


def rows_of(
    run_id: str,
    start: datetime,
    statuses: dict[tuple[str, str], str],
    phase: str = "check",
    severity: str = "high",
    runbook: str = "audit",
) -> list[dict[str, object]]:
    """One row per (host, control) -> status, all in one run."""
    return [
        make_row(
            run_id=run_id,
            runbook=runbook,
            host=host,
            control=control,
            phase=phase,
            status=status,
            severity=severity,
            started_at=start,
            duration_s=1.0,
        )
        for (host, control), status in statuses.items()
    ]


def frame(*runs: list[dict[str, object]]) -> pd.DataFrame:
    return to_frame([r for run in runs for r in run])


def changes(d: pd.DataFrame) -> dict[tuple[str, str], tuple[object, object, str]]:
    """(host, control) -> (old_status, new_status, change), with None for a missing status."""

    def status(value: object) -> object:
        return None if value is None or value is pd.NA or (isinstance(value, float) and value != value) else value

    return {
        (str(r["host"]), str(r["control"])): (status(r["old_status"]), status(r["new_status"]), str(r["change"]))
        for r in d.to_dict("records")
    }


# ------------------------------------------------------------------------------------------ drift


class TestDrift:
    def test_each_kind_of_change(self) -> None:
        old = frame(
            rows_of(
                "r1",
                T0,
                {
                    ("h1", "a"): "pass",
                    ("h1", "b"): "fail",
                    ("h1", "c"): "pass",
                    ("h1", "d"): "pass",
                    ("h1", "e"): "waived",
                    ("h1", "f"): "not_applicable",
                    ("h1", "g"): "error",
                    ("h1", "h"): "fail",
                },
            )
        )
        new = frame(
            rows_of(
                "r2",
                T0 + DAY,
                {
                    ("h1", "a"): "fail",
                    ("h1", "b"): "pass",
                    ("h1", "c"): "pass",
                    ("h2", "d"): "pass",
                    ("h1", "e"): "error",
                    ("h1", "f"): "fail",
                    ("h1", "g"): "waived",
                    ("h1", "h"): "error",
                },
            )
        )
        got = changes(drift(old, new))
        assert got == {
            ("h1", "a"): ("pass", "fail", "regressed"),
            ("h1", "e"): ("waived", "error", "regressed"),
            ("h1", "f"): ("not_applicable", "fail", "regressed"),
            ("h1", "b"): ("fail", "pass", "fixed"),
            ("h1", "g"): ("error", "waived", "fixed"),
            ("h1", "h"): ("fail", "error", "changed"),
            ("h2", "d"): (None, "pass", "new"),
            ("h1", "d"): ("pass", None, "gone"),
        }

    def test_columns_dtypes_and_order(self) -> None:
        old = frame(rows_of("r1", T0, {("h1", "x"): "fail", ("h2", "x"): "pass", ("h3", "y"): "pass"}))
        new = frame(
            rows_of("r2", T0 + DAY, {("h1", "x"): "pass", ("h2", "x"): "fail"}),
            rows_of("r2", T0 + DAY, {("h3", "y"): "fail"}, severity="critical"),
            rows_of("r2", T0 + DAY, {("h0", "z"): "fail"}, severity="low"),
        )
        d = drift(old, new)
        assert list(d.columns) == ["host", "control", "severity", "old_status", "new_status", "change"]
        assert list(zip(d["change"], d["host"], strict=True)) == [
            ("regressed", "h3"),
            ("regressed", "h2"),
            ("fixed", "h1"),
            ("new", "h0"),
        ]
        assert d["severity"].tolist() == ["critical", "high", "high", "low"]
        assert str(d["host"].dtype) == "string"
        assert d["severity"].cat.ordered

    def test_no_change_gives_empty_frame(self) -> None:
        run = frame(rows_of("r1", T0, {("h1", "a"): "pass"}))
        d = drift(run, run)
        assert d.empty
        assert list(d.columns) == ["host", "control", "severity", "old_status", "new_status", "change"]

    def test_uses_latest_run_of_each_side(self) -> None:
        old = frame(
            rows_of("old-2", T0 + DAY, {("h1", "a"): "fail"}),
            rows_of("old-1", T0, {("h1", "a"): "pass", ("h1", "b"): "pass"}),
        )
        new = frame(
            rows_of("new-1", T0 + 2 * DAY, {("h1", "a"): "fail"}),
            rows_of("new-2", T0 + 3 * DAY, {("h1", "a"): "pass"}),
        )
        assert changes(drift(old, new)) == {("h1", "a"): ("fail", "pass", "fixed")}

    def test_verify_rows_count_for_remediate(self) -> None:
        old = frame(rows_of("r1", T0, {("h1", "a"): "fail"}))
        new = frame(
            rows_of("r2", T0 + DAY, {("h1", "a"): "fail"}, runbook="remediate"),
            rows_of("r2", T0 + DAY, {("h1", "a"): "fixed"}, phase="fix", runbook="remediate"),
            rows_of("r2", T0 + DAY, {("h1", "a"): "pass"}, phase="verify", runbook="remediate"),
        )
        assert changes(drift(old, new)) == {("h1", "a"): ("fail", "pass", "fixed")}

    def test_empty_old_means_everything_new(self) -> None:
        new = frame(rows_of("r1", T0, {("h1", "a"): "pass", ("h2", "a"): "fail"}))
        d = drift(to_frame([]), new)
        assert set(d["change"]) == {"new"}
        assert len(d) == 2
        assert drift(to_frame([]), to_frame([])).empty

    def test_over_loaded_run_dirs(self, tmp_path: Path) -> None:
        # name order disagrees with start order: run_started_at from run.json decides
        write_run(tmp_path / "b", rows_of("b", T0, {("h1", "a"): "pass"}), {"started_at": T0.isoformat()})
        write_run(tmp_path / "a", rows_of("a", T0, {("h1", "a"): "fail"}), {"started_at": (T0 + DAY).isoformat()})
        runs = load_runs(tmp_path)
        assert latest_final(runs)["run_id"].tolist() == ["a"]
        assert changes(drift(load_runs(tmp_path / "b"), runs)) == {("h1", "a"): ("pass", "fail", "regressed")}


# ------------------------------------------------------------------------------------------ flapping


def history(sequence: dict[tuple[str, str], list[str]]) -> pd.DataFrame:
    """Runs r0, r1, ... one day apart, each with the n-th status of every pair."""
    length = max(len(v) for v in sequence.values())
    runs = [rows_of(f"r{i}", T0 + i * DAY, {k: v[i] for k, v in sequence.items() if i < len(v)}) for i in range(length)]
    return frame(*runs)


class TestFlapping:
    def test_counts_pass_fail_transitions(self) -> None:
        runs = history(
            {
                ("h1", "a"): ["pass", "fail", "pass", "fail"],  # 3
                ("h1", "b"): ["pass", "fail", "fail", "fail"],  # 1
                ("h2", "a"): ["fail", "error", "pass", "not_applicable", "fail"],  # 2 (others skipped)
                ("h3", "a"): ["pass", "pass", "pass", "pass"],  # 0
            }
        )
        f = flapping(runs)
        assert list(f.columns) == [
            "host",
            "control",
            "severity",
            "transitions",
            "observations",
            "last_status",
        ]
        assert list(zip(f["host"], f["control"], f["transitions"], strict=True)) == [
            ("h1", "a", 3),
            ("h2", "a", 2),
        ]
        assert f["observations"].tolist() == [4, 3]
        assert f["last_status"].tolist() == ["fail", "fail"]

    def test_orders_by_run_start_not_row_order(self) -> None:
        runs = frame(
            rows_of("late", T0 + 2 * DAY, {("h", "a"): "pass"}),
            rows_of("early", T0, {("h", "a"): "pass"}),
            rows_of("mid", T0 + DAY, {("h", "a"): "fail"}),
        )
        assert flapping(runs)["transitions"].tolist() == [2]

    def test_uses_final_status_per_run(self) -> None:
        # a remediate run that fixes (fail then verify pass) is not a flap
        runs = frame(
            rows_of("r1", T0, {("h", "a"): "fail"}, runbook="remediate"),
            rows_of("r1", T0, {("h", "a"): "pass"}, phase="verify", runbook="remediate"),
            rows_of("r2", T0 + DAY, {("h", "a"): "pass"}),
        )
        assert flapping(runs).empty

    def test_empty(self) -> None:
        assert flapping(to_frame([])).empty


# ------------------------------------------------------------------------------------------ time_to_fix


class TestTimeToFix:
    def test_across_runs(self) -> None:
        runs = history(
            {
                ("h1", "a"): ["pass", "fail", "fail", "pass", "fail", "pass"],
                ("h1", "b"): ["fail", "fail"],
                ("h2", "a"): ["pass", "pass"],
            }
        )
        table = time_to_fix(runs)
        t = {(str(r["host"]), str(r["control"])): r for r in table.to_dict("records")}
        assert list(table.columns)[2:] == [
            "severity",
            "first_failed_at",
            "failed_run_id",
            "fixed_at",
            "fixed_run_id",
            "time_to_fix",
        ]
        assert ("h2", "a") not in t
        fixed = t[("h1", "a")]
        assert fixed["first_failed_at"] == pd.Timestamp(T0 + DAY)
        assert fixed["fixed_at"] == pd.Timestamp(T0 + 3 * DAY)
        assert (fixed["failed_run_id"], fixed["fixed_run_id"]) == ("r1", "r3")
        assert fixed["time_to_fix"] == pd.Timedelta(days=2)
        open_ = t[("h1", "b")]
        assert pd.isna(open_["fixed_at"]) and pd.isna(open_["time_to_fix"]) and pd.isna(open_["fixed_run_id"])

    def test_within_a_remediate_run(self) -> None:
        check = rows_of("r1", T0, {("h", "a"): "fail"}, runbook="remediate")
        verify = rows_of("r1", T0 + timedelta(seconds=42), {("h", "a"): "pass"}, phase="verify", runbook="remediate")
        t = time_to_fix(frame(verify, check))
        assert t["time_to_fix"].tolist() == [pd.Timedelta(seconds=42)]
        assert t["fixed_run_id"].tolist() == ["r1"]

    def test_waived_and_error_are_neither_fail_nor_fix(self) -> None:
        runs = history({("h", "a"): ["fail", "waived", "error", "pass"]})
        t = time_to_fix(runs)
        assert t["time_to_fix"].tolist() == [pd.Timedelta(days=3)]

    @pytest.mark.parametrize("statuses", [["pass"], ["waived", "pass"]])
    def test_never_failed_is_absent(self, statuses: list[str]) -> None:
        assert time_to_fix(history({("h", "a"): statuses})).empty

    def test_empty(self) -> None:
        t = time_to_fix(to_frame([]))
        assert t.empty
        assert "time_to_fix" in t.columns
