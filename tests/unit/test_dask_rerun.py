"""What a Dask retry says about the hosts it runs again (`hardnir.dask_runner`); the retry on a real cluster with a
worker SIGKILLed mid-shard: tests/integration/test_dask_worker_death.py."""

from __future__ import annotations

from hardnir.dask_runner import MAY_HAVE_CHANGED, RERUN_NOTE, changes_hosts, noted, rerun_note


def test_only_runs_that_can_change_hosts_count_as_changing() -> None:
    assert changes_hosts("remediate", dry_run=False) and changes_hosts("rollback", dry_run=False)
    assert not changes_hosts("remediate", dry_run=True)
    assert not changes_hosts("audit", dry_run=False)


def test_the_note_names_the_shard_and_the_dead_workers() -> None:
    assert rerun_note(3, ["tcp://127.0.0.1:4001"]) == f"{RERUN_NOTE} (shard 3 on tcp://127.0.0.1:4001)"
    assert rerun_note(0, []) == f"{RERUN_NOTE} (shard 0 on a worker that never reported its start)"


def test_noted_rows_put_the_note_first_and_leave_the_originals_alone() -> None:
    rows = [{"host": "a", "message": "nothing to undo (state: rolled-back)"}, {"host": "a", "message": ""}]
    note = f"{rerun_note(1, ['w1'])}; {MAY_HAVE_CHANGED}"
    assert [r["message"] for r in noted(rows, note)] == [f"{note}; nothing to undo (state: rolled-back)", note]
    assert rows[0]["message"] == "nothing to undo (state: rolled-back)"  # copies, not the worker's own rows
    assert noted(rows, "") is rows  # no retry: nothing copied
