"""The progress line counts a host as failing the way the exit code judges it: on the runbook's judged phases."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from itertools import groupby
from typing import Any

from hardnir.progress import Progress
from hardnir.runbook import runbook_named
from tests.synthetic_fleet import AUDIT, HOSTS, audit_rows, remediate_rows

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


def final_line(label: str, rows: Sequence[Mapping[str, Any]], judged_phases: Sequence[str]) -> str:
    stream = io.StringIO()
    bar = Progress(label, len(HOSTS), stream, judged_phases)
    for host, host_rows in groupby(rows, key=lambda r: str(r["host"])):
        bar.update(host, list(host_rows))
    return stream.getvalue().splitlines()[-1]


def test_remediate_counts_a_host_whose_fixes_passed_as_not_failing() -> None:
    # node-01 failed two checks, both fixed and verified; node-02 fix_failed, node-03 blocked, node-04 unreachable
    rows = remediate_rows("r1", T0)
    assert {r["status"] for r in rows if r["host"] == "node-01" and r["phase"] == "check"} == {"pass", "fail"}
    line = final_line("remediate", rows, runbook_named("remediate").judged_phases)
    assert "4/4 hosts  failing 2  unreachable/error 1" in line, line


def test_audit_judges_every_row() -> None:
    line = final_line("audit", audit_rows("a1", T0, AUDIT), runbook_named("audit").judged_phases)
    assert "4/4 hosts  failing 3  unreachable/error 1" in line, line


def test_a_host_the_task_could_not_run_on_is_an_error_whatever_the_phases() -> None:
    stream = io.StringIO()
    bar = Progress("remediate", 1, stream, ("fix", "verify"))
    bar.update("h1", [{"status": "error"}])  # what the processor reports for a failed task instance
    assert "1/1 hosts  failing 0  unreachable/error 1" in stream.getvalue()
