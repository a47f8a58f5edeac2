"""Unit tests for hardnir.report: the text summary, fix outcomes and drift tables."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pandas as pd

from hardnir.drift import drift
from hardnir.report import drift_table, format_table, phase_counts, status_counts, summary_table
from hardnir.results import make_row, to_frame

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def row(**overrides: object) -> dict[str, object]:
    fields: dict[str, object] = {
        "run_id": "rem-1",
        "runbook": "remediate",
        "host": "lab-01",
        "control": "core-docker",
        "phase": "check",
        "status": "fail",
        "severity": "high",
        "started_at": T0,
        "duration_s": 1.0,
    }
    fields.update(overrides)
    return make_row(**fields)  # type: ignore[arg-type]


def remediate_run() -> pd.DataFrame:
    return to_frame(
        [
            row(),
            row(phase="fix", status="fixed", changed=True),
            row(phase="verify", status="pass"),
            row(host="lab-02"),
            row(host="lab-02", phase="fix", status="fix_failed"),
            row(host="lab-02", phase="verify", status="fail"),
            row(host="lab-03", status="pass"),
            row(host="lab-03", phase="fix", status="unchanged"),
            row(host="lab-04", control="fleet-socket", status="not_applicable", severity="medium"),
            row(host="lab-04", control="fleet-socket", phase="fix", status="blocked", severity="medium"),
            row(host="lab-05", status="error", message="unreachable"),
            row(host="lab-05", control="fleet-socket", status="waived", severity="medium"),
            row(host="lab-03", control="fleet-socket", status="fail", severity="medium"),
            row(host="lab-03", control="fleet-socket", phase="fix", status="would_fix", severity="medium"),
        ]
    )


def section(text: str, title: str) -> list[list[str]]:
    """The rows (split on runs of 2+ spaces) of the table under ``title``, header first."""
    block = text.split(f"{title}\n", 1)[1].split("\n\n", 1)[0]
    lines = [line for line in block.splitlines() if not set(line) <= {"-", " "}]
    return [re.split(r"\s{2,}", line.strip()) for line in lines]


def test_per_control_table() -> None:
    table = section(summary_table(remediate_run()), "Per control")
    assert table[0] == ["control", "severity", "pass", "fail", "waived", "n/a", "error", "compliance"]
    assert table[1] == ["core-docker", "high", "2", "1", "0", "0", "1", "66.7%"]
    assert table[2] == ["fleet-socket", "medium", "0", "1", "1", "1", "0", "50.0%"]


def test_per_host_table() -> None:
    table = section(summary_table(remediate_run()), "Per host")
    assert table[0] == ["host", "pass", "fail", "waived", "n/a", "error", "compliance"]
    rows = {r[0]: r[1:] for r in table[1:]}
    assert rows["lab-01"] == ["1", "0", "0", "0", "0", "100.0%"]
    assert rows["lab-02"] == ["0", "1", "0", "0", "0", "0.0%"]
    assert rows["lab-03"] == ["1", "1", "0", "0", "0", "50.0%"]
    assert rows["lab-04"] == ["0", "0", "0", "1", "0", "-"]
    assert rows["lab-05"] == ["0", "0", "1", "0", "1", "100.0%"]


def test_fix_outcomes_table() -> None:
    table = section(summary_table(remediate_run()), "Fix outcomes")
    assert table[0] == ["control", "fixed", "would_fix", "unchanged", "fix_failed", "blocked", "error"]
    assert table[1] == ["core-docker", "1", "0", "1", "1", "0", "0"]
    assert table[2] == ["fleet-socket", "0", "1", "0", "0", "1", "0"]
    assert table[3] == ["total", "1", "1", "1", "1", "1", "0"]


def test_header_lines() -> None:
    text = summary_table(remediate_run())
    first, second = text.splitlines()[:2]
    assert first == "run rem-1 (remediate): 14 rows, 5 hosts"
    assert second == "final status: pass 2, fail 2, not_applicable 1, error 1, waived 1"


def test_audit_run_has_no_fix_section() -> None:
    df = to_frame([row(runbook="audit"), row(runbook="audit", host="lab-02", status="pass")])
    text = summary_table(df)
    assert "Fix outcomes" not in text and "Rollback outcomes" not in text
    assert section(text, "Per control")[1] == ["core-docker", "high", "1", "1", "0", "0", "0", "50.0%"]


def test_rollback_outcomes() -> None:
    df = to_frame(
        [
            row(runbook="rollback", phase="rollback", status="restored"),
            row(runbook="rollback", host="lab-02", phase="rollback", status="rollback_failed"),
        ]
    )
    table = section(summary_table(df), "Rollback outcomes")
    assert table[0] == ["control", "restored", "unchanged", "rollback_failed", "error"]
    assert table[-1] == ["total", "1", "0", "1", "0"]


def test_rollback_run_alone() -> None:
    df = to_frame([row(runbook="rollback", phase="rollback", status="restored", host_key="SHA256:abc")])
    text = summary_table(df)
    assert section(text, "Per control") == [
        ["control", "severity", "pass", "fail", "waived", "n/a", "error", "compliance"]
    ]
    assert section(text, "Rollback outcomes")[-1] == ["total", "1", "0", "0", "0"]


def test_columns_are_aligned() -> None:
    text = summary_table(remediate_run())
    block = text.split("Per host\n", 1)[1].split("\n\n", 1)[0].splitlines()
    # the last column is right-aligned, so every line (header, rule, rows) has the same width
    assert len({len(line) for line in block}) == 1
    assert block[1].startswith("-" * len("lab-01") + "  ")


def test_empty_frame() -> None:
    assert summary_table(to_frame([])) == "no results"
    assert status_counts(to_frame([])) == {"pass": 0, "fail": 0, "not_applicable": 0, "error": 0, "waived": 0}


def test_status_counts_use_final_status() -> None:
    assert status_counts(remediate_run()) == {
        "pass": 2,
        "fail": 2,
        "not_applicable": 1,
        "error": 1,
        "waived": 1,
    }


def test_phase_counts() -> None:
    assert phase_counts(remediate_run(), "fix") == {
        "fixed": 1,
        "would_fix": 1,
        "unchanged": 1,
        "fix_failed": 1,
        "blocked": 1,
        "error": 0,
    }
    assert phase_counts(remediate_run(), "rollback") == {
        "restored": 0,
        "unchanged": 0,
        "rollback_failed": 0,
        "error": 0,
    }


def test_control_characters_never_reach_the_terminal() -> None:
    evil = {**row(), "host": "lab-\x1b[2Jevil"}  # bypasses make_row on purpose
    text = summary_table(to_frame([evil]))
    assert "\x1b" not in text
    assert "lab-\\x1b[2Jevil" in text


def test_drift_table() -> None:
    old = to_frame([row(run_id="a", runbook="audit", host=h, status="pass") for h in ("lab-01", "lab-02")])
    new = to_frame([row(run_id="b", host="lab-02"), row(run_id="b", host="lab-03", status="pass")])
    text = drift_table(drift(old, new))
    lines = text.splitlines()
    assert re.split(r"\s{2,}", lines[0]) == ["change", "host", "control", "severity", "old", "new"]
    body = [re.split(r"\s{2,}", line.strip()) for line in lines[2:] if line]
    assert body[:3] == [
        ["regressed", "lab-02", "core-docker", "high", "pass", "fail"],
        ["new", "lab-03", "core-docker", "high", "-", "pass"],
        ["gone", "lab-01", "core-docker", "high", "pass", "-"],
    ]
    assert lines[-1] == "regressed 1, new 1, gone 1"


def test_drift_table_empty() -> None:
    run = to_frame([row()])
    assert drift_table(drift(run, run)) == "no changes"


def test_format_table() -> None:
    text = format_table(["name", "n"], [["a", 1], ["bbb", 22], ["c", None]], [False, True])
    assert text.splitlines() == ["name   n", "----  --", "a      1", "bbb   22", "c      -"]
