"""Nornir's habits without a lab: tasks take a control id, progress is a processor next to the user's own, a
finding is data (not `failed`), and an unknown id is a clear error."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from nornir import InitNornir
from nornir.core.inventory import Host
from nornir.core.task import AggregatedResult, MultiResult, Task
from nornir_utils.plugins.functions import print_result

from hardnir import api
from hardnir.control import ControlError, as_control
from hardnir.inventory import init_nornir
from hardnir.nornir_tasks import check_control
from hardnir.progress import factory
from tests.offline_setup import recorded_facts, simple_inventory_config, unreachable_inventory


def test_check_control_takes_an_id_and_a_finding_is_not_a_failure(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    nr = init_nornir(unreachable_inventory(tmp_path / "inv")).filter(name="h1")
    result = nr.run(task=check_control, control="core-rkt", facts=recorded_facts())
    finding = result["h1"][0].result
    assert finding.status == "fail" and "core is in rkt" in finding.message
    assert not result.failed and not result["h1"][0].changed
    print_result(result)
    assert "core is in rkt" in capsys.readouterr().out


def test_an_unknown_control_id_is_one_line() -> None:
    with pytest.raises(ControlError, match="unknown control id: core-rtk"):
        as_control("core-rtk")
    assert as_control(as_control("core-rkt")).id == "core-rkt"


class Seen:
    """A user's processor: which hosts finished the runbook's task."""

    def __init__(self) -> None:
        self.hosts: list[str] = []

    def task_started(self, task: Task) -> None: ...

    def task_completed(self, task: Task, result: AggregatedResult) -> None: ...

    def task_instance_started(self, task: Task, host: Host) -> None: ...

    def task_instance_completed(self, task: Task, host: Host, result: MultiResult) -> None:
        self.hosts.append(host.name)

    def subtask_instance_started(self, task: Task, host: Host) -> None: ...

    def subtask_instance_completed(self, task: Task, host: Host, result: MultiResult) -> None: ...


def test_progress_is_a_processor_next_to_the_users_own(tmp_path: Path) -> None:
    seen, stream = Seen(), io.StringIO()
    inventory = unreachable_inventory(tmp_path / "inv", ("h1", "h2"))
    nr: Any = InitNornir(config_file=str(simple_inventory_config(inventory, tmp_path / "nornir.yaml")))
    outcome = api.execute("audit", nr, controls="core-rkt", processors=[seen], progress=factory("audit", stream),
                          out=tmp_path / "run")
    assert sorted(seen.hosts) == ["h1", "h2"]
    assert "2/2 hosts  failing 0  unreachable/error 2" in stream.getvalue() and "3/2" not in stream.getvalue()
    assert outcome.exit_code == api.EXIT_UNREACHABLE
