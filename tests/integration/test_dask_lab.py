"""`--runner dask` on the lab: a LocalCluster with 2 worker processes audits the whole lab like the threaded runner,
and an external cluster (`dask scheduler` + 2 `dask worker`, started here) remediates then rolls back etcd members
of one cluster, restarting them one at a time although their shards run on two workers at once."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

pytest.importorskip("distributed")

from hardnir import api
from hardnir.lab import lab_exec, reset_host
from tests.dask_cluster import Cluster

pytestmark = [pytest.mark.lab, pytest.mark.timeout(300)]

RESTART_TIMES = "systemctl show -p ActiveExitTimestampMonotonic -p ActiveEnterTimestampMonotonic --value etcd2.service"


def _verdicts(rows: list[dict[str, Any]]) -> set[tuple[str, str, str, str]]:
    return {(r["host"], r["control"], r["phase"], r["status"]) for r in rows}


def test_local_cluster_of_two_workers_gives_the_threaded_verdicts_on_the_lab(lab: Any, tmp_path: Path) -> None:
    threaded = api.execute("audit", lab.inventory_dir, out=tmp_path / "threaded")
    counted: list[str] = []

    class Bar:  # the progress bar's interface: the Dask runner counts hosts, as workers finish them
        def update(self, host: str, rows: list[dict[str, Any]]) -> None:
            counted.append(host)

        def close(self) -> None:
            pass

    dask = api.execute("audit", lab.inventory_dir, runner="dask", dask_workers=2, out=tmp_path / "dask",
                       progress=lambda total: Bar())
    assert _verdicts(dask.rows) == _verdicts(threaded.rows)
    assert {"pass", "fail", "error"} <= {r["status"] for r in dask.rows}  # real verdicts, and the dead host
    assert sorted(counted) == sorted(threaded.meta["hosts"])  # every host counted once
    assert dask.exit_code == threaded.exit_code
    runner = json.loads((tmp_path / "dask/run.json").read_text())["runner"]
    assert runner["name"] == "dask" and runner["scheduler"] == "local" and runner["workers"] == 2
    shards = runner["shards"]
    assert sum(s["hosts"] for s in shards) == len(threaded.meta["hosts"]) and {s["status"] for s in shards} == {"done"}
    assert len({s["worker"] for s in shards}) == 2 and all(len(s["workers"]) == 1 for s in shards)


def _restart_window(host: str) -> tuple[int, int]:
    """(stop began, active again) of the host's last etcd2 restart, on the kernel's monotonic clock (µs)."""
    stopped, started = lab_exec(host, RESTART_TIMES).stdout.split()
    return int(stopped), int(started)


def test_external_cluster_remediates_then_rolls_back_etcd_members_one_at_a_time(lab: Any, tmp_path: Path) -> None:
    """Four etcd members named as one cluster (`etcd_cluster`) are cut into four shards on two workers: their fixes
    take the run's Dask lock for the cluster, so no two of them are ever down together; the rollback, also on the
    cluster, puts the audit back as it was."""
    before = api.execute("audit", lab.inventory_dir, controls="etcd-tls", out=tmp_path / "before")
    members = sorted(r["host"] for r in before.rows if r["status"] == "fail")[:4]
    assert len(members) == 4, before.rows
    inv = tmp_path / "inv"
    inv.mkdir()
    hosts = yaml.safe_load((Path(lab.inventory_dir) / "hosts.yaml").read_text())
    for name in members:
        hosts[name].setdefault("data", {})["etcd_cluster"] = "lab-etcd"
    (inv / "hosts.yaml").write_text(yaml.safe_dump(hosts))
    for name in ("groups.yaml", "defaults.yaml"):
        (inv / name).write_text((Path(lab.inventory_dir) / name).read_text())
    cluster = Cluster(2)
    try:
        fixed = api.execute("remediate", inv, hosts=members, controls="etcd-tls", wave_size=4,
                            runner="dask", scheduler=cluster.address, out=tmp_path / "fix")
        windows = {host: _restart_window(host) for host in members}
        undo = api.execute("rollback", inv, hosts=members, target_run=tmp_path / "fix", runner="dask",
                           scheduler=cluster.address, out=tmp_path / "undo")
    finally:
        cluster.close()
    try:
        assert {r["status"] for r in fixed.rows if r["phase"] == "fix"} == {"fixed"}, fixed.rows
        shards = fixed.meta["runner"]["shards"]
        assert len(shards) == 4 and len({s["worker"] for s in shards}) == 2  # side by side on two workers
        for (a, (a_stop, a_up)), (b, (b_stop, b_up)) in itertools.combinations(windows.items(), 2):
            assert a_up < b_stop or b_up < a_stop, f"{a} and {b} were down together: {windows}"
        assert {r["status"] for r in undo.rows if r["phase"] == "rollback"} == {"restored"}, undo.rows
        after = api.execute("audit", lab.inventory_dir, controls="etcd-tls", hosts=members, out=tmp_path / "after")
        assert _verdicts(after.rows) == {v for v in _verdicts(before.rows) if v[0] in members}
    finally:
        for name in members:
            reset_host(name)
