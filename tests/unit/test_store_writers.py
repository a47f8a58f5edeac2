"""The run directory's writer (pyarrow and the csv module, no pandas) against the pandas writer it replaced.

The reference below is the old writer: ``to_frame`` of the redacted rows, ``DataFrame.to_parquet`` and the old
pandas cell formatter ``csv_column`` (kept here) + ``DataFrame.to_csv``. The CSV must be byte-identical, and
``pandas.read_parquet`` and ``read_run`` must give the same frames; ``read_run`` (its own Parquet reader) what
``pandas.read_parquet`` gives.
"""

from __future__ import annotations

import io
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hardnir.frames import coerce, to_frame
from hardnir.rows import make_row
from hardnir.store import RESULTS_CSV, RESULTS_PARQUET, arrowfile, csvfile, read_run, write_run
from hardnir.store.columns import run_columns
from hardnir.store.csvfile import neutralise_formula
from hardnir.store.redaction import redactor, safe_row

T0 = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)
HOSTILE = ["=1+2", "+cmd", "-x", "@SUM(A1)", "\tx", "\rx", "\uff1dx", "'=x", "a,b", 'say "hi"', "two\nlines",
           "cr\r\nlf", "ünïcødé ✓ 日本", "", " lead", "trail ", "\x1b[31mred\x00", '"', ",", "secret-pw inside"]


def csv_column(series: pd.Series) -> pd.Series:
    """The old pandas formatter of one typed column (the reference): timestamps ISO UTC, booleans true/false,
    formulas neutralised, empty for missing."""
    if str(series.dtype).startswith("datetime64"):
        stamps: pd.Series = series.dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ").astype(object)
        return stamps.where(series.notna(), "")
    if series.dtype == bool or isinstance(series.dtype, pd.BooleanDtype):
        return series.map({True: "true", False: "false"}).astype(object).where(series.notna(), "")
    if isinstance(series.dtype, pd.StringDtype | pd.CategoricalDtype) or series.dtype == object:
        text = series.astype(object).where(series.notna(), "")
        return text.map(lambda v: neutralise_formula(str(v)))
    return series.astype(object).where(series.notna(), "")


def row(**overrides: object) -> dict[str, object]:
    fields: dict[str, object] = {"run_id": "run-1", "runbook": "audit", "host": "lab-01", "control": "core-docker",
                                 "phase": "check", "status": "pass", "severity": "high", "started_at": T0,
                                 "duration_s": 0.5}
    fields.update(overrides)
    return make_row(**fields)  # type: ignore[arg-type]


def old_writer(run_dir: Path, rows: Sequence[Mapping[str, object]], secrets: Sequence[str]) -> None:
    """results.parquet and results.csv as the pandas writer made them."""
    pattern = redactor(secrets)
    frame = to_frame([safe_row(r, pattern) for r in rows])
    run_dir.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(run_dir / RESULTS_PARQUET, index=False, engine="pyarrow")
    text = pd.DataFrame({col: csv_column(frame[col]) for col in frame.columns}, columns=list(frame.columns))
    (run_dir / RESULTS_CSV).write_bytes(text.to_csv(index=False, lineterminator="\n").encode("utf-8"))


def assert_same_files(tmp: Path, rows: Sequence[Mapping[str, object]], secrets: Sequence[str] = ()) -> None:
    old, new = tmp / "old", tmp / "new"
    old_writer(old, rows, secrets)
    write_run(new, rows, {}, secrets=secrets)
    assert (new / RESULTS_CSV).read_bytes() == (old / RESULTS_CSV).read_bytes()
    pd.testing.assert_frame_equal(pd.read_parquet(new / RESULTS_PARQUET), pd.read_parquet(old / RESULTS_PARQUET))
    pd.testing.assert_frame_equal(read_run(new), read_run(old))
    for written in (new, old):
        pd.testing.assert_frame_equal(read_run(written), coerce(pd.read_parquet(written / RESULTS_PARQUET)))


def hostile_rows() -> list[dict[str, object]]:
    rows = []
    for i, text in enumerate(HOSTILE):
        rows.append(row(host=f"h{i}{text}", expected=text, observed=text, message=text, evidence={"raw": text},
                        status="fail", host_key=text, platform=text or None, waiver_reason=text,
                        started_at=T0 + timedelta(microseconds=i), duration_s=[0.0, 1e-05, 2.25, 1e20, 3][i % 5]))
    rows.append(row(runbook="zz-plugin", severity="low", changed=True,
                    started_at=datetime(2026, 3, 1, 14, tzinfo=timezone(timedelta(hours=2)))))
    rows.append(row(started_at=datetime(1, 1, 1, tzinfo=UTC), duration_s=0))
    rows.append({**row(), "expected": "hand-made \x07 row", "observed": "=formula"})
    return rows


def test_hostile_cells_are_written_as_the_pandas_writer_wrote_them(tmp_path: Path) -> None:
    assert_same_files(tmp_path, hostile_rows(), secrets=["secret-pw", ""])


def test_no_rows(tmp_path: Path) -> None:
    assert_same_files(tmp_path, [])


def test_rows_that_are_not_plain_are_typed_by_pandas(tmp_path: Path) -> None:
    rows = [row(wave=1, note="a"), row(wave=2, note=None, other=True), {**row(), "started_at": "2026-03-01T12:00Z"}]
    assert not run_columns(rows, None).plain
    assert_same_files(tmp_path, rows)


def test_several_row_groups(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(arrowfile, "ROW_GROUP_ROWS", 4)
    rows = [row(host=f"h{i}", duration_s=i / 7, changed=i % 3 == 0) for i in range(11)]
    assert_same_files(tmp_path, rows)
    assert pq.ParquetFile(tmp_path / "new" / RESULTS_PARQUET).num_row_groups == 3


def test_rows_are_neither_copied_nor_changed(tmp_path: Path) -> None:
    rows = hostile_rows()
    before = [dict(r) for r in rows]
    columns = run_columns(rows, redactor(["secret-pw"]))
    assert columns.values["duration_s"][0] is rows[0]["duration_s"]
    assert columns.values["run_id"][0] is rows[0]["run_id"]  # a cell that needs no change is not copied
    assert rows == before


def test_writing_a_run_does_not_import_pandas(tmp_path: Path) -> None:
    script = (
        "import sys; from datetime import datetime, UTC; from hardnir.rows import make_row; "
        "from hardnir.store import write_run; "
        "r = make_row(run_id='r', runbook='audit', host='h', control='c', phase='check', status='pass', "
        "severity='low', started_at=datetime.now(UTC), duration_s=1.0, host_key='k'); "
        f"write_run({str(tmp_path)!r}, [r], {{}}); "
        "print('pandas' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    assert len(read_run(tmp_path)) == 1


TEXT = st.text(alphabet=st.characters(codec="utf-8"), max_size=40)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cells=st.lists(st.tuples(TEXT, TEXT, TEXT, st.one_of(st.none(), TEXT),
                                st.floats(min_value=0, max_value=1e9, allow_nan=False)), min_size=1, max_size=5))
def test_random_cells(cells: list[tuple[str, str, str, str | None, float]]) -> None:
    rows = [row(host=h, observed=o, evidence=e, note=n, duration_s=d) for h, o, e, n, d in cells]
    with tempfile.TemporaryDirectory() as tmp:
        if all(n is None for *_, n, _ in cells):
            rows[0]["note"] = ""  # an all-None extra column is typed by pandas' guess: covered above
        assert_same_files(Path(tmp), rows)


@pytest.mark.parametrize("stamp", [datetime(999, 5, 1, 2, 3, 4, 5, tzinfo=UTC), datetime(9999, 12, 31, tzinfo=UTC)])
def test_timestamps_keep_four_digit_years(tmp_path: Path, stamp: datetime) -> None:
    assert_same_files(tmp_path, [row(started_at=stamp)])
    assert io.StringIO((tmp_path / "new" / RESULTS_CSV).read_text()).read().count(f"{stamp.year:04d}-") == 1


def test_more_rows_that_are_not_plain(tmp_path: Path) -> None:
    rows = [row(score=1.5, ok=True, count=3), row(score=None, ok=None, count=None),
            {**row(), "started_at": "2026-03-01T12:00:00.123456789Z", "duration_s": 2},
            {**row(), "started_at": "2026-03-01T14:00:00+02:00"}, {**row(), "started_at": "2026-03-01 12:00"}]
    assert not run_columns(rows, None).plain
    assert_same_files(tmp_path, rows)


@pytest.mark.parametrize("bad", [{"started_at": "not a time"}, {"status": "sideways"}, {"changed": "false"}])
def test_bad_cells_fail_as_the_typed_frame_fails(tmp_path: Path, bad: dict[str, object]) -> None:
    rows = [{**row(), **bad}]
    with pytest.raises(ValueError) as typed:
        to_frame(rows)
    with pytest.raises(ValueError) as written:
        write_run(tmp_path, rows, {})
    assert str(written.value) == str(typed.value)


def test_csv_column_formats_any_typed_column_as_the_pandas_formatter_did() -> None:
    stamps = ["2026-03-01T12:00:00.123456789Z", None, "1999-12-31T23:59:59Z"]
    frame = pd.DataFrame({
        "aware_ns": pd.to_datetime(pd.Series(stamps), utc=True, format="ISO8601"),
        "naive": pd.to_datetime(pd.Series(["2026-03-01T12:00:00.5", None, "2026-03-02"]), format="ISO8601"),
        "ints": pd.Series([1, None, -7], dtype="Int64"),
        "bools": pd.Series([True, None, False], dtype="boolean"),
        "plain_bools": [True, False, True],
        "floats": [0.1, float("nan"), 1e20],
        "category": pd.Series(["=x", None, "b"], dtype="category"),
        "text": pd.Series(["-1", None, "ok"], dtype="string"),
        "objects": ["@a", None, 3],
    }, index=[5, 6, 7])
    for name in frame.columns:  # the old formatter left numbers for to_csv to write
        new, old = (pd.DataFrame({name: f(frame[name])}).to_csv(lineterminator="\n") for f in (csvfile.csv_column,
                                                                                              csv_column))
        assert new == old
