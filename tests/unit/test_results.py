"""Unit tests for hardnir.results: rows, frames, the run store and the compliance views."""

from __future__ import annotations

import csv
import io
import json
import math
import tempfile
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hardnir import results
from hardnir.results import (
    RunDirError,
    compliance,
    final_status,
    load_runs,
    make_row,
    read_meta,
    read_run,
    redact,
    to_frame,
    write_run,
)
from hardnir.schema import (
    COLUMNS,
    EVIDENCE_MAX_CHARS,
    MESSAGE_MAX_CHARS,
    PHASES,
    RUNBOOKS,
    SEVERITIES,
    STATUSES,
)

T0 = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)


def row(**overrides: object) -> dict[str, object]:
    """A valid check row; keyword arguments override fields."""
    fields: dict[str, object] = {
        "run_id": "run-1",
        "runbook": "audit",
        "host": "lab-01",
        "control": "core-docker",
        "phase": "check",
        "status": "pass",
        "severity": "high",
        "started_at": T0,
        "duration_s": 0.5,
    }
    fields.update(overrides)
    return make_row(**fields)  # type: ignore[arg-type]


def csv_cells(run_dir: Path) -> list[dict[str, str]]:
    """The CSV export parsed with the stdlib reader (what a spreadsheet import sees)."""
    text = (run_dir / "results.csv").read_text(encoding="utf-8")
    return list(csv.DictReader(io.StringIO(text)))


# ------------------------------------------------------------------------------------------ make_row


class TestMakeRow:
    def test_columns_in_schema_order_then_extras(self) -> None:
        r = row(zeta=1, alpha="a")
        assert list(r) == [*COLUMNS, "zeta", "alpha"]

    def test_defaults(self) -> None:
        r = row()
        assert r["changed"] is False
        assert r["expected"] == r["observed"] == r["message"] == r["evidence"] == ""
        assert r["started_at"] == T0
        assert r["duration_s"] == 0.5

    @pytest.mark.parametrize(
        ("field", "value"),
        [("phase", "checking"), ("status", "passed"), ("severity", "urgent"), ("status", "fixed")],
    )
    def test_rejects_unknown_values(self, field: str, value: str) -> None:
        with pytest.raises(ValueError, match=value):
            row(**{field: value})

    @pytest.mark.parametrize(
        ("phase", "status"),
        [("check", "fixed"), ("verify", "restored"), ("fix", "pass"), ("rollback", "would_fix")],
    )
    def test_status_must_fit_phase(self, phase: str, status: str) -> None:
        with pytest.raises(ValueError, match="status"):
            row(phase=phase, status=status)

    @pytest.mark.parametrize(
        ("phase", "status"),
        [
            ("check", "waived"),
            ("verify", "error"),
            ("fix", "blocked"),
            ("fix", "error"),
            ("rollback", "restored"),
        ],
    )
    def test_accepts_statuses_of_the_phase(self, phase: str, status: str) -> None:
        assert row(phase=phase, status=status)["status"] == status

    def test_naive_datetime_rejected(self) -> None:
        with pytest.raises(ValueError, match="timezone"):
            row(started_at=datetime(2026, 1, 1))

    def test_started_at_converted_to_utc(self) -> None:
        local = datetime(2026, 1, 1, 14, 0, tzinfo=timezone(timedelta(hours=2)))
        r = row(started_at=local)
        assert r["started_at"] == datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
        assert r["started_at"].utcoffset() == timedelta(0)  # type: ignore[attr-defined]

    @pytest.mark.parametrize("duration", [math.nan, math.inf, -math.inf])
    def test_non_finite_duration_rejected(self, duration: float) -> None:
        with pytest.raises(ValueError, match="duration_s"):
            row(duration_s=duration)

    def test_negative_duration_clamped(self) -> None:
        # time.time() can step backwards (NTP); the row must not be lost for that
        assert row(duration_s=-0.25)["duration_s"] == 0.0

    def test_changed_must_be_bool(self) -> None:
        with pytest.raises(TypeError):
            row(changed="false")

    def test_evidence_object_is_sorted_json(self) -> None:
        r = row(evidence={"b": [1, 2], "a": {"z": None, "y": datetime(2026, 1, 1, tzinfo=UTC)}})
        assert r["evidence"] == '{"a": {"y": "2026-01-01 00:00:00+00:00", "z": null}, "b": [1, 2]}'

    def test_evidence_keeps_unicode_readable(self) -> None:
        assert row(evidence={"k": "ünïcode ✓"})["evidence"] == '{"k": "ünïcode ✓"}'

    def test_evidence_capped_with_marker(self) -> None:
        r = row(evidence="x" * (EVIDENCE_MAX_CHARS * 2))
        text = str(r["evidence"])
        assert len(text) <= EVIDENCE_MAX_CHARS
        kept = text.index("…")
        assert text.endswith(f"…[truncated {EVIDENCE_MAX_CHARS * 2 - kept} chars]")

    def test_evidence_at_cap_untouched(self) -> None:
        assert row(evidence="y" * EVIDENCE_MAX_CHARS)["evidence"] == "y" * EVIDENCE_MAX_CHARS

    def test_message_is_one_line_and_capped(self) -> None:
        r = row(message="first\nsecond\r\nthird\u2028fourth\x0bfifth")
        assert r["message"] == "first second third fourth fifth"
        long = str(row(message="m" * 2000)["message"])
        assert len(long) <= MESSAGE_MAX_CHARS
        assert "truncated" in long
        assert str(long).splitlines() == [long]

    def test_control_characters_neutralised_in_every_string_cell(self) -> None:
        nasty = "a\x1b[31mred\x00nul\x07bell\x9bcsi\x7fdel\tTab\nnl"
        r = row(
            run_id=nasty,
            runbook=nasty,
            host=nasty,
            control=nasty,
            expected=nasty,
            observed=nasty,
            message=nasty,
            evidence=nasty,
            extra_col=nasty,
        )
        for key, value in r.items():
            if isinstance(value, str):
                assert not any(ord(c) < 32 and c != "\t" for c in value), key
                assert not any(0x7F <= ord(c) <= 0x9F for c in value), key
        assert r["observed"] == "a\\x1b[31mred\\x00nul\\x07bell\\x9bcsi\\x7fdel\tTab\\nnl"
        assert r["message"] == "a\\x1b[31mred\\x00nul\\x07bell\\x9bcsi\\x7fdel\tTab nl"

    def test_evidence_object_with_control_chars(self) -> None:
        # json escapes C0 itself; C1 and DEL are escaped by make_row
        assert row(evidence={"k": "\x1b\x85"})["evidence"] == '{"k": "\\u001b\\x85"}'

    def test_lone_surrogate_replaced(self) -> None:
        assert row(observed="a\ud800b")["observed"] == "a\ufffdb"


def test_truncate_never_exceeds_limit() -> None:
    for limit in (0, 5, 20, 25, 100):
        for size in (0, limit, limit + 1, limit * 10 + 7, 12345):
            out = results.truncate("z" * size, limit)
            assert len(out) <= max(limit, 0) or size <= limit
            if size > limit and limit >= 25:
                assert out.endswith(f"[truncated {size - out.count('z')} chars]")
            elif size > limit:  # no room for the marker: hard cut
                assert out == "z" * limit


# ------------------------------------------------------------------------------------------ to_frame


def expected_dtypes() -> dict[str, str]:
    return {
        "run_id": "string",
        "runbook": "category",
        "host": "string",
        "control": "string",
        "phase": "category",
        "status": "category",
        "severity": "category",
        "changed": "bool",
        "expected": "string",
        "observed": "string",
        "message": "string",
        "evidence": "string",
        "started_at": "datetime64[us, UTC]",
        "duration_s": "float64",
    }


class TestToFrame:
    def test_dtypes_and_order(self) -> None:
        df = to_frame([row(), row(host="lab-02", status="fail", severity="low", changed=True)])
        assert list(df.columns) == list(COLUMNS)
        assert {c: str(t) for c, t in df.dtypes.items()} == expected_dtypes()
        assert isinstance(df["host"].dtype, pd.StringDtype)
        assert df["host"].dtype.na_value is pd.NA
        assert list(df["phase"].cat.categories) == list(PHASES)
        assert list(df["status"].cat.categories) == list(STATUSES)
        assert df["severity"].cat.ordered
        assert list(df["severity"].cat.categories) == list(SEVERITIES)
        assert df["severity"].max() == "high"
        assert list(df["runbook"].cat.categories) == list(RUNBOOKS)
        assert df["started_at"].iloc[0] == pd.Timestamp(T0)

    def test_severity_ordering(self) -> None:
        df = to_frame([row(severity=s) for s in ("critical", "low", "medium")])
        assert list(df.sort_values("severity")["severity"]) == ["low", "medium", "critical"]
        assert (df["severity"] > "medium").tolist() == [True, False, False]

    def test_empty(self) -> None:
        df = to_frame([])
        assert df.empty
        assert list(df.columns) == list(COLUMNS)
        assert {c: str(t) for c, t in df.dtypes.items()} == expected_dtypes()

    def test_extras_after_schema(self) -> None:
        df = to_frame([row(wave=1, note="a"), row(note=None, other=True)])
        assert list(df.columns) == [*COLUMNS, "wave", "note", "other"]
        assert str(df["note"].dtype) == "string"
        assert df["note"].isna().tolist() == [False, True]
        assert str(df["wave"].dtype) == "Int64"

    def test_other_runbook_gets_its_own_category(self) -> None:
        df = to_frame([row(runbook="baseline"), row()])
        assert list(df["runbook"].cat.categories) == [*RUNBOOKS, "baseline"]
        assert df["runbook"].tolist() == ["baseline", "audit"]

    def test_unknown_status_in_a_hand_made_row_is_an_error(self) -> None:
        bad = {**row(), "status": "passed"}
        with pytest.raises(ValueError, match="passed"):
            to_frame([bad])

    @pytest.mark.parametrize("value", ["false", None, 0])
    def test_changed_must_be_boolean_in_hand_made_rows(self, value: object) -> None:
        with pytest.raises(ValueError, match="changed"):
            to_frame([{**row(), "changed": value}])

    def test_missing_column_is_an_error(self) -> None:
        bad = row()
        del bad["evidence"]
        with pytest.raises(ValueError, match="evidence"):
            to_frame([bad])

    def test_accepts_any_iterable(self) -> None:
        assert len(to_frame(row(host=f"h{i}") for i in range(3))) == 3


# ------------------------------------------------------------------------------------------ redact


class TestRedact:
    def test_replaces_every_occurrence(self) -> None:
        assert redact("pw=s3cret; again s3cret", ["s3cret"]) == "pw=***; again ***"

    def test_empty_secret_ignored(self) -> None:
        assert redact("abc", ["", "b"]) == "a***c"

    def test_overlapping_secrets_redacted_whole(self) -> None:
        assert redact("token=abcdef", ["abc", "abcdef"]) == "token=***"

    def test_regex_characters_are_literal(self) -> None:
        assert redact("a.b a+b", ["a+b"]) == "a.b ***"

    def test_no_secrets(self) -> None:
        assert redact("text", []) == "text"

    def test_json_escaped_form_redacted(self) -> None:
        secret = 'p"w\\d'
        evidence = row(evidence={"password": secret})["evidence"]
        assert redact(str(evidence), [secret]) == '{"password": "***"}'


# ------------------------------------------------------------------------------------------ write/read


FORMULAS = ["=cmd|' /C calc'!A0", "+1", "-2", "@SUM(1)", "\tx", "\uff1d1+1"]


def sample_rows() -> list[dict[str, object]]:
    return [
        row(),
        row(
            host="lab-02",
            status="fail",
            observed="in docker group",
            expected="not in docker group",
            message="core is in docker",
            evidence={"groups": ["core", "docker"]},
        ),
        row(
            host="lab-02",
            phase="fix",
            status="fixed",
            changed=True,
            duration_s=2.25,
            started_at=T0 + timedelta(seconds=3),
        ),
        row(host="lab-02", phase="verify", status="pass", started_at=T0 + timedelta(seconds=6)),
        row(host="lab-03", status="error", message="unreachable: timed out", severity="critical"),
    ]


class TestWriteRead:
    def test_round_trip_parquet(self, tmp_path: Path) -> None:
        rows = sample_rows()
        write_run(tmp_path / "run", rows, {"runbook": "audit"})
        pd.testing.assert_frame_equal(read_run(tmp_path / "run"), to_frame(rows))

    def test_round_trip_csv_fallback(self, tmp_path: Path) -> None:
        rows = sample_rows() + [row(expected=f, observed=f, evidence=f, host=f) for f in FORMULAS]
        rows.append(row(observed="'=already quoted", expected="'plain quote", evidence="''+two"))
        write_run(tmp_path, rows, {})
        (tmp_path / "results.parquet").unlink()
        pd.testing.assert_frame_equal(read_run(tmp_path), to_frame(rows))

    def test_round_trip_empty(self, tmp_path: Path) -> None:
        write_run(tmp_path, [], {})
        pd.testing.assert_frame_equal(read_run(tmp_path), to_frame([]))
        assert (tmp_path / "results.csv").read_text().strip() == ",".join(COLUMNS)
        assert read_meta(tmp_path)["row_count"] == 0
        (tmp_path / "results.parquet").unlink()
        pd.testing.assert_frame_equal(read_run(tmp_path), to_frame([]))

    def test_round_trip_with_extras(self, tmp_path: Path) -> None:
        rows = [row(wave=1, note="n"), row(wave=2, note=None)]
        write_run(tmp_path, rows, {})
        pd.testing.assert_frame_equal(read_run(tmp_path), to_frame(rows))

    def test_parquet_dtypes(self, tmp_path: Path) -> None:
        write_run(tmp_path, sample_rows(), {})
        raw = pd.read_parquet(tmp_path / "results.parquet")
        assert {c: str(t) for c, t in raw.dtypes.items()} == expected_dtypes()
        assert raw["severity"].cat.ordered

    def test_creates_nested_dir_and_leaves_no_temp_files(self, tmp_path: Path) -> None:
        target = tmp_path / "a" / "b" / "run"
        write_run(target, sample_rows(), {})
        assert sorted(p.name for p in target.iterdir()) == ["SHA256SUMS", "results.csv", "results.parquet", "run.json"]

    def test_overwrite_is_whole(self, tmp_path: Path) -> None:
        write_run(tmp_path, sample_rows(), {})
        write_run(tmp_path, [row()], {})
        assert len(read_run(tmp_path)) == 1
        assert len(csv_cells(tmp_path)) == 1

    def test_csv_header_and_format(self, tmp_path: Path) -> None:
        write_run(tmp_path, sample_rows(), {})
        raw = (tmp_path / "results.csv").read_bytes()
        header = raw.decode("utf-8").splitlines()[0]
        assert header == ",".join(COLUMNS)
        assert not raw.startswith(b"\xef\xbb\xbf")
        cells = csv_cells(tmp_path)
        assert cells[0]["started_at"] == "2026-03-01T12:00:00.123456Z"
        assert [c["changed"] for c in cells] == ["false", "false", "true", "false", "false"]
        assert cells[2]["duration_s"] == "2.25"
        assert json.loads(cells[1]["evidence"]) == {"groups": ["core", "docker"]}

    def test_csv_extra_columns_follow(self, tmp_path: Path) -> None:
        write_run(tmp_path, [row(wave=3)], {})
        header = (tmp_path / "results.csv").read_text().splitlines()[0]
        assert header == ",".join([*COLUMNS, "wave"])

    @pytest.mark.parametrize("formula", FORMULAS)
    @pytest.mark.parametrize("column", ["expected", "observed", "evidence", "message", "host", "note"])
    def test_formulas_neutralised_in_csv(self, tmp_path: Path, formula: str, column: str) -> None:
        made = row(**{column: formula})
        write_run(tmp_path, [made], {})
        cell = csv_cells(tmp_path)[0][column]
        if column == "message" and formula == "\tx":
            assert cell == "x"  # messages are stripped, so nothing is left to neutralise
        else:
            assert cell == "'" + formula

    def test_harmless_cells_untouched_in_csv(self, tmp_path: Path) -> None:
        write_run(tmp_path, [row(observed="a=b", expected="'quoted", evidence="x-1")], {})
        cell = csv_cells(tmp_path)[0]
        assert (cell["observed"], cell["expected"], cell["evidence"]) == ("a=b", "'quoted", "x-1")

    def test_neutralise_formula_reversible(self) -> None:
        for text in [*FORMULAS, "'=x", "''=x", "'", "'a", "", "a", "-"]:
            assert results.restore_formula(results.neutralise_formula(text)) == text

    def test_ansi_and_nul_never_reach_files(self, tmp_path: Path) -> None:
        nasty = "\x1b]0;pwned\x07\x1b[2J\x00\r"
        rows = [row(observed=nasty, evidence={"raw": nasty}, message=nasty, host="h" + nasty)]
        # a hand-made row that bypassed make_row is neutralised by write_run too
        rows.append({**row(), "expected": nasty})
        write_run(tmp_path, rows, {"note": "ok"})
        data = (tmp_path / "results.csv").read_bytes() + (tmp_path / "run.json").read_bytes()
        for byte in (b"\x1b", b"\x00", b"\x07", b"\r"):
            assert byte not in data
        back = read_run(tmp_path)
        for col in ("observed", "evidence", "message", "host", "expected"):
            for value in back[col]:
                assert "\x1b" not in value and "\x00" not in value

    def test_secrets_redacted_in_all_three_files(self, tmp_path: Path) -> None:
        secret = "Hunter2-Pa55w0rd"
        rows = [
            row(
                observed=f"password={secret}",
                evidence={"env": {"PASS": secret}},
                message=f"used {secret}",
                note=secret,
            ),
            row(host="lab-02", expected=secret),
        ]
        meta = {"inventory": f"/inv?pw={secret}", "options": {"nested": [secret, {"k": secret}]}}
        plain, redacted = tmp_path / "plain", tmp_path / "redacted"
        write_run(plain, rows, meta)
        write_run(redacted, rows, meta, secrets=[secret, ""])
        for name in ("results.csv", "results.parquet", "run.json"):
            assert secret.encode() in (plain / name).read_bytes(), name  # the grep below is meaningful
            assert secret.encode() not in (redacted / name).read_bytes(), name
        back = read_run(redacted)
        assert back["observed"].iloc[0] == "password=***"
        assert back["expected"].iloc[1] == "***"
        assert json.loads(str(back["evidence"].iloc[0])) == {"env": {"PASS": "***"}}
        assert read_meta(redacted)["options"] == {"nested": ["***", {"k": "***"}]}

    def test_run_json(self, tmp_path: Path) -> None:
        meta = {
            "runbook": "audit",
            "started_at": T0,
            "inventory": Path("/inv"),
            "controls": {"core-docker": "1.0"},
            "hosts": ("a", "b"),
            "user": "ops",
        }
        write_run(tmp_path, sample_rows(), meta)
        text = (tmp_path / "run.json").read_text(encoding="utf-8")
        assert "\n  " in text  # pretty
        doc = json.loads(text)
        assert doc["row_count"] == 5
        assert doc["columns"] == list(COLUMNS)
        assert doc["schema_version"] == results.SCHEMA_VERSION == 2
        assert doc["started_at"] == T0.isoformat()
        assert doc["inventory"] == "/inv"
        assert doc["hosts"] == ["a", "b"]
        assert read_meta(tmp_path) == doc

    def test_read_run_errors(self, tmp_path: Path) -> None:
        with pytest.raises(RunDirError) as missing:
            read_run(tmp_path / "nope")
        assert str(tmp_path / "nope") in str(missing.value)
        with pytest.raises(RunDirError) as empty:
            read_run(tmp_path)
        assert str(tmp_path) in str(empty.value)
        (tmp_path / "results.csv").write_text("garbage\nline two\n")
        with pytest.raises(RunDirError) as bad:
            read_run(tmp_path)
        for err in (missing, empty, bad):
            assert "\n" not in str(err.value)

    def test_read_meta_errors(self, tmp_path: Path) -> None:
        with pytest.raises(RunDirError, match=r"run\.json"):
            read_meta(tmp_path)
        (tmp_path / "run.json").write_text("[1, 2]")
        with pytest.raises(RunDirError, match="object"):
            read_meta(tmp_path)
        (tmp_path / "run.json").write_text("{broken")
        with pytest.raises(RunDirError) as err:
            read_meta(tmp_path)
        assert "\n" not in str(err.value)


# ------------------------------------------------------------------------------------------ hypothesis


CELL_TEXT = st.text(alphabet=st.characters(codec="utf-8"), max_size=60)
PLAIN_TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")), max_size=60)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    host=CELL_TEXT,
    expected=CELL_TEXT,
    observed=CELL_TEXT,
    message=CELL_TEXT,
    evidence=CELL_TEXT,
    extra=CELL_TEXT,
    runbook=CELL_TEXT,
)
def test_random_cells_survive_round_trip(
    host: str, expected: str, observed: str, message: str, evidence: str, extra: str, runbook: str
) -> None:
    r = row(
        host=host,
        expected=expected,
        observed=observed,
        message=message,
        evidence=evidence,
        runbook=runbook,
        extra=extra,
    )
    # the only change make_row makes to cells is the documented neutralisation
    assert r["observed"] == results.neutralise_controls(observed)
    assert r["expected"] == results.neutralise_controls(expected)
    assert r["host"] == results.neutralise_controls(host)
    assert r["message"] == results.clean_message(message)
    want = to_frame([r])
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp)
        write_run(run_dir, [r], {"note": extra})
        pd.testing.assert_frame_equal(read_run(run_dir), want)
        (run_dir / "results.parquet").unlink()
        pd.testing.assert_frame_equal(read_run(run_dir), want)


@settings(max_examples=60, deadline=None)
@given(text=PLAIN_TEXT)
def test_clean_text_passes_make_row_unchanged(text: str) -> None:
    r = row(observed=text, evidence=text)
    assert r["observed"] == text
    assert r["evidence"] == text


# ------------------------------------------------------------------------------------------ load_runs


def write_sample_run(base: Path, name: str, start: datetime, statuses: dict[str, str]) -> Path:
    rows = [
        row(run_id=name, host=host, status=status, started_at=start + timedelta(seconds=1))
        for host, status in statuses.items()
    ]
    write_run(base / name, rows, {"run_id": name, "started_at": start.isoformat()})
    return base / name


class TestLoadRuns:
    def test_parent_folder_expands_sorted_by_start(self, tmp_path: Path) -> None:
        write_sample_run(tmp_path, "b-first", T0, {"h1": "fail"})
        write_sample_run(tmp_path, "a-second", T0 + timedelta(days=1), {"h1": "pass", "h2": "pass"})
        (tmp_path / "not-a-run").mkdir()
        df = load_runs(tmp_path)
        assert df["run_id"].tolist() == ["b-first", "a-second", "a-second"]
        assert list(df.columns) == [*COLUMNS, "run_started_at"]
        assert str(df["run_started_at"].dtype) == "datetime64[us, UTC]"
        assert df["run_started_at"].iloc[0] == pd.Timestamp(T0)
        assert {c: str(t) for c, t in df.dtypes.items() if c in COLUMNS} == expected_dtypes()

    def test_list_of_run_dirs_and_dedupe(self, tmp_path: Path) -> None:
        one = write_sample_run(tmp_path, "one", T0, {"h1": "fail"})
        two = write_sample_run(tmp_path, "two", T0 + timedelta(hours=1), {"h1": "pass"})
        df = load_runs([str(two), one, two])
        assert df["run_id"].tolist() == ["two", "one"]

    def test_mixed_runbooks_keep_categories(self, tmp_path: Path) -> None:
        write_run(tmp_path / "r1", [row(run_id="r1", runbook="baseline")], {"started_at": T0.isoformat()})
        write_run(tmp_path / "r2", [row(run_id="r2", runbook="remediate")], {"started_at": "2027-01-01"})
        df = load_runs(tmp_path)
        assert df["runbook"].tolist() == ["baseline", "remediate"]
        assert list(df["runbook"].cat.categories) == [*RUNBOOKS, "baseline"]
        assert df["run_started_at"].iloc[1] == pd.Timestamp("2027-01-01", tz="UTC")

    def test_run_start_falls_back_to_rows(self, tmp_path: Path) -> None:
        write_run(tmp_path, [row(started_at=T0 + timedelta(minutes=5)), row(started_at=T0)], {})
        df = load_runs(tmp_path)
        assert (df["run_started_at"] == pd.Timestamp(T0)).all()

    def test_errors(self, tmp_path: Path) -> None:
        with pytest.raises(RunDirError, match="not found"):
            load_runs(tmp_path / "missing")
        with pytest.raises(RunDirError, match="no run directories"):
            load_runs(tmp_path)

    def test_nothing_given(self) -> None:
        df = load_runs([])
        assert df.empty
        assert list(df.columns) == [*COLUMNS, "run_started_at"]


# ------------------------------------------------------------------------------------------ final_status


def final_map(df: pd.DataFrame) -> dict[tuple[str, str, str], str]:
    fs = final_status(df)
    assert list(fs.columns) == ["run_id", "host", "control", "severity", "status"]
    return {(str(r["run_id"]), str(r["host"]), str(r["control"])): str(r["status"]) for r in fs.to_dict("records")}


class TestFinalStatus:
    def test_verify_wins_over_check_and_fix_ignored(self) -> None:
        df = to_frame(sample_rows())
        assert final_map(df) == {
            ("run-1", "lab-01", "core-docker"): "pass",
            ("run-1", "lab-02", "core-docker"): "pass",
            ("run-1", "lab-03", "core-docker"): "error",
        }

    def test_failed_fix_keeps_verify_fail(self) -> None:
        df = to_frame(
            [
                row(status="fail"),
                row(phase="fix", status="fix_failed"),
                row(phase="verify", status="fail"),
            ]
        )
        assert final_map(df) == {("run-1", "lab-01", "core-docker"): "fail"}

    def test_last_verify_row_wins(self) -> None:
        df = to_frame(
            [
                row(status="fail"),
                row(phase="verify", status="fail"),
                row(phase="verify", status="pass", started_at=T0 + timedelta(seconds=5)),
                row(status="pass"),
            ]
        )
        assert final_map(df) == {("run-1", "lab-01", "core-docker"): "pass"}

    def test_check_only_uses_last_check(self) -> None:
        df = to_frame([row(status="error"), row(status="fail")])
        assert final_map(df) == {("run-1", "lab-01", "core-docker"): "fail"}

    def test_rollback_only_rows_map_to_earlier_run(self) -> None:
        remediate = (
            [row(run_id="rem", runbook="remediate", host=h, status="fail") for h in ("h1", "h2", "h3")]
            + [row(run_id="rem", runbook="remediate", host=h, phase="verify", status="pass") for h in ("h1", "h2")]
            + [row(run_id="rem", runbook="remediate", host="h3", phase="verify", status="fail")]
        )
        later = T0 + timedelta(hours=1)
        rollback = [
            row(
                run_id="rb",
                runbook="rollback",
                host="h1",
                phase="rollback",
                status="restored",
                started_at=later,
            ),
            row(
                run_id="rb",
                runbook="rollback",
                host="h2",
                phase="rollback",
                status="unchanged",
                started_at=later,
            ),
            row(
                run_id="rb",
                runbook="rollback",
                host="h3",
                phase="rollback",
                status="rollback_failed",
                started_at=later,
            ),
            row(
                run_id="rb",
                runbook="rollback",
                host="h4",
                phase="rollback",
                status="restored",
                started_at=later,
            ),
        ]
        got = final_map(to_frame(remediate + rollback))
        assert got[("rb", "h1", "core-docker")] == "fail"  # restored to the pre-fix check state
        assert got[("rb", "h2", "core-docker")] == "pass"  # unchanged: kept the verified state
        assert got[("rb", "h3", "core-docker")] == "error"  # rollback failed: state unknown
        assert ("rb", "h4", "core-docker") not in got  # nothing known about h4 before
        assert got[("rem", "h1", "core-docker")] == "pass"

    def test_rollback_uses_latest_run_before_it(self) -> None:
        def at(hours: int) -> datetime:
            return T0 + timedelta(hours=hours)

        rows = [
            row(run_id="audit-0", status="pass", started_at=at(0)),
            row(run_id="rem-1", runbook="remediate", status="fail", started_at=at(1)),
            row(run_id="rem-1", runbook="remediate", phase="verify", status="pass", started_at=at(1)),
            row(run_id="rb-2", runbook="rollback", phase="rollback", status="restored", started_at=at(2)),
            row(run_id="audit-3", status="error", started_at=at(3)),
            row(run_id="rb-4", runbook="rollback", phase="rollback", status="unchanged", started_at=at(4)),
        ]
        got = final_map(to_frame(rows))
        assert got[("rb-2", "lab-01", "core-docker")] == "fail"  # rem-1's check, not audit-3
        assert got[("rb-4", "lab-01", "core-docker")] == "error"  # audit-3 has only a check row
        assert len(got) == 5

    def test_rollback_run_alone_has_no_final_state(self) -> None:
        df = to_frame([row(run_id="rb", runbook="rollback", phase="rollback", status="restored")])
        assert final_map(df) == {}
        assert compliance(df)["by_host"].empty

    def test_fix_rows_only(self) -> None:
        assert final_map(to_frame([row(phase="fix", status="fixed")])) == {}

    def test_rollback_run_with_verify_uses_verify(self) -> None:
        df = to_frame(
            [
                row(run_id="rb", runbook="rollback", phase="rollback", status="restored"),
                row(run_id="rb", runbook="rollback", phase="verify", status="fail"),
            ]
        )
        assert final_map(df) == {("rb", "lab-01", "core-docker"): "fail"}

    def test_empty(self) -> None:
        fs = final_status(to_frame([]))
        assert fs.empty
        assert list(fs.columns) == ["run_id", "host", "control", "severity", "status"]


class TestCompliance:
    def test_counts_and_percentages(self) -> None:
        rows = [
            row(host="h1", control="c1", status="pass"),
            row(host="h2", control="c1", status="fail"),
            row(host="h3", control="c1", status="waived"),
            row(host="h1", control="c2", status="not_applicable", severity="low"),
            row(host="h2", control="c2", status="error", severity="low"),
            row(host="h3", control="c2", status="fail", severity="low"),
            row(host="h3", control="c2", phase="verify", status="pass", severity="low"),
        ]
        tables = compliance(to_frame(rows))
        by_control = {r["control"]: r for r in tables["by_control"].to_dict("records")}
        counted = ["pass", "fail", "waived", "not_applicable", "error"]
        assert [by_control["c1"][k] for k in counted] == [1, 1, 1, 0, 0]
        assert by_control["c1"]["compliance_pct"] == pytest.approx(200 / 3)
        assert [by_control["c2"][k] for k in counted] == [1, 0, 0, 1, 1]
        assert by_control["c2"]["compliance_pct"] == 100.0
        assert by_control["c1"]["severity"] == "high"
        assert list(tables["by_control"].columns) == ["control", "severity", *counted, "compliance_pct"]
        by_host = {r["host"]: r for r in tables["by_host"].to_dict("records")}
        assert by_host["h1"]["compliance_pct"] == 100.0
        assert by_host["h2"]["compliance_pct"] == 0.0
        assert (by_host["h3"]["pass"], by_host["h3"]["waived"]) == (1, 1)
        assert list(tables["by_host"].columns) == ["host", *counted, "compliance_pct"]

    def test_nothing_applicable_is_nan(self) -> None:
        tables = compliance(to_frame([row(status="not_applicable"), row(host="h2", status="error")]))
        assert math.isnan(tables["by_control"]["compliance_pct"].iloc[0])
        assert tables["by_host"]["compliance_pct"].isna().all()

    def test_empty(self) -> None:
        tables = compliance(to_frame([]))
        assert tables["by_control"].empty and tables["by_host"].empty
        assert "compliance_pct" in tables["by_host"].columns
