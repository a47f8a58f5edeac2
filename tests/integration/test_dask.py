"""`--runner dask` on a real Dask cluster against the simulated fleet (benchmarks/simfleet.py: real SSH servers on
127.0.0.1 ports), compared host by host with the threaded runner. No lab, no root.

- a LocalCluster (the default) and an external `dask scheduler` + 2 `dask worker` processes (the CLI with
  --scheduler) give the same (host, control, phase, status) set as the threaded runner, and leave no host out;
- a worker SIGKILLed mid-run: its shard's hosts get `error` rows naming the cause, every other host its verdicts;
- an inline secret is refused under a remote scheduler, an unreachable scheduler is one line (exit 2).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("distributed")
pytest.importorskip("asyncssh")

from hardnir import api
from hardnir.cli import main
from hardnir.dask_runner import DaskRunError

pytestmark = pytest.mark.timeout(180)  # a hung cluster fails the test instead of blocking the suite

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
HOSTS = 200
BASE_PORT = 31500  # above the benchmarks' 20000-30000 range, below the ephemeral ports


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _verdicts(rows: list[dict[str, Any]]) -> set[tuple[str, str, str, str]]:
    return {(r["host"], r["control"], r["phase"], r["status"]) for r in rows}


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    work = tmp_path_factory.mktemp("simfleet")
    proc = subprocess.Popen([sys.executable, str(REPO / "benchmarks/simfleet.py"), "--hosts", str(HOSTS),
                             "--workdir", str(work), "--base-port", str(BASE_PORT), "--inventory-sizes", str(HOSTS),
                             "--refuse", "0.02"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("READY"), f"simfleet did not start: {line!r}"
        yield work / f"inventory-{HOSTS}"
    finally:
        proc.terminate()
        proc.wait(30)


@pytest.fixture(scope="module")
def threaded(fleet: Path, tmp_path_factory: pytest.TempPathFactory) -> set[tuple[str, str, str, str]]:
    outcome = api.execute("audit", fleet, out=tmp_path_factory.mktemp("threaded") / "run")
    verdicts = _verdicts(outcome.rows)
    assert {"pass", "fail", "error"} <= {v[3] for v in verdicts}  # real verdicts, and the refused hosts' errors
    return verdicts


class Cluster:
    """`dask scheduler` plus worker processes (no nanny: a killed worker stays dead) on 127.0.0.1."""

    def __init__(self, workers: int, env: dict[str, str] | None = None, resources: tuple[str, ...] = ()) -> None:
        self.port = _free_port()
        self.address = f"tcp://127.0.0.1:{self.port}"
        self.env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}  # workers import this module's tasks
        self.scheduler = subprocess.Popen([str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port",
                                           str(self.port), "--no-dashboard"], env=self.env,
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.workers = [subprocess.Popen([str(BIN / "dask"), "worker", self.address, "--host", "127.0.0.1",
                                          "--nthreads", "1", "--no-nanny", "--no-dashboard",
                                          *(["--resources", resources[i]] if i < len(resources) else [])],
                                         env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                        for i in range(workers)]
        from distributed import Client

        with Client(self.address, timeout=30) as client:
            client.wait_for_workers(workers, timeout=60)

    def close(self) -> None:
        for proc in [*self.workers, self.scheduler]:
            proc.terminate()
        for proc in [*self.workers, self.scheduler]:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


def _worker_addresses(address: str) -> set[str]:
    from distributed import Client

    with Client(address, timeout=30) as client:
        return set(client.scheduler_info()["workers"])


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    c = Cluster(2)
    try:
        yield c
    finally:
        c.close()


def test_local_cluster_gives_the_threaded_verdicts(fleet: Path, threaded: set[tuple[str, str, str, str]],
                                                   tmp_path: Path) -> None:
    seen: list[str] = []

    class Bar:  # the progress bar's interface: counts hosts as workers report them
        def update(self, host: str, rows: list[dict[str, Any]]) -> None:
            assert rows and all(r["status"] for r in rows)
            seen.append(host)

        def close(self) -> None:
            pass

    outcome = api.execute("audit", fleet, runner="dask", out=tmp_path / "run", progress=lambda total: Bar())
    assert _verdicts(outcome.rows) == threaded
    assert sorted(seen) == sorted({v[0] for v in threaded})  # every host counted once
    meta = json.loads((tmp_path / "run/run.json").read_text())
    runner = meta["runner"]
    assert runner["name"] == "dask" and runner["scheduler"] == "local"
    assert sum(s["hosts"] for s in runner["shards"]) == HOSTS
    assert {s["status"] for s in runner["shards"]} == {"done"}
    assert all(s["worker"].startswith("tcp://127.0.0.1:") for s in runner["shards"])
    assert len(runner["shards"]) == 4 * runner["workers"]  # about 4 shards per worker


def test_external_scheduler_via_cli_gives_the_threaded_verdicts_and_stays_up(
        fleet: Path, threaded: set[tuple[str, str, str, str]], cluster: Cluster, tmp_path: Path) -> None:
    code = main(["audit", "-i", str(fleet), "--runner", "dask", "--scheduler", cluster.address, "-q",
                 "--out", str(tmp_path / "run")])
    assert code == api.EXIT_UNREACHABLE  # the refused hosts, as in the threaded run
    import pandas as pd

    df = pd.read_parquet(tmp_path / "run/results.parquet")
    assert _verdicts(df.to_dict("records")) == threaded
    runner = json.loads((tmp_path / "run/run.json").read_text())["runner"]
    assert runner["scheduler"] == cluster.address and runner["workers"] == 2
    assert {s["worker"] for s in runner["shards"]} == {w for w in _worker_addresses(
        cluster.address)}
    assert cluster.scheduler.poll() is None and all(w.poll() is None for w in cluster.workers)  # left running


def test_a_worker_killed_mid_run_loses_no_host(fleet: Path, threaded: set[tuple[str, str, str, str]],
                                                tmp_path: Path) -> None:
    """allowed-failures 0: the shard running on the killed worker is not retried, so it must become error rows."""
    c = Cluster(2, {"DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": "0"})
    try:
        result: dict[str, Any] = {}
        run = threading.Thread(target=lambda: result.update(outcome=api.execute(
            "audit", fleet, runner="dask", scheduler=c.address, workers=1, out=tmp_path / "run")))
        run.start()
        from distributed import Client

        with Client(c.address, timeout=30) as client:
            deadline = time.monotonic() + 60
            busy: list[str] = []
            while not busy and time.monotonic() < deadline:
                busy = [w for w, tasks in client.processing().items() if tasks]
                time.sleep(0.05)
            assert busy, "no shard started"
            pid = client.run(os.getpid, workers=[busy[0]])[busy[0]]
        assert pid in {w.pid for w in c.workers}
        os.kill(pid, signal.SIGKILL)
        run.join(180)
        assert not run.is_alive()
        rows = result["outcome"].rows
        assert {r["host"] for r in rows} == {v[0] for v in threaded}  # every host has rows
        lost = {r["host"] for r in rows if "KilledWorker" in r["message"]}
        assert lost, "the killed worker's shard should have failed"
        assert all(r["status"] == "error" for r in rows if r["host"] in lost)
        assert {v for v in _verdicts(rows) if v[0] not in lost} == {v for v in threaded if v[0] not in lost}
        shards = json.loads((tmp_path / "run/run.json").read_text())["runner"]["shards"]
        assert sum(s["hosts"] for s in shards if s["status"] == "failed") == len(lost)
    finally:
        c.close()


def test_inline_secret_refused_under_a_remote_scheduler(tmp_path: Path) -> None:
    inv = tmp_path / "inv"
    inv.mkdir()
    (inv / "hosts.yaml").write_text("a:\n  hostname: 198.19.255.254\n")
    (inv / "defaults.yaml").write_text("username: core\nconnection_options:\n  hardnir:\n    extras:\n"
                                       "      passphrase: hunter2-secret\n")
    with pytest.raises(DaskRunError, match=r"inline secret .*defaults: connection_options\.hardnir\.extras\."
                       r"passphrase.* refused"):
        api.execute("audit", inv, runner="dask", scheduler="tcp://127.0.0.1:9", out=tmp_path / "run")
    assert not (tmp_path / "run").exists()
    proc = subprocess.run([str(BIN / "hardnir"), "audit", "-i", str(inv), "--runner", "dask", "--out",
                           str(tmp_path / "run")], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "DASK_SCHEDULER_ADDRESS": "tcp://127.0.0.1:9"})
    assert proc.returncode == 2 and "hunter2" not in proc.stderr + proc.stdout
    assert proc.stderr.count("\n") == 1 and "inline secret" in proc.stderr


def test_unreachable_scheduler_is_one_line(tmp_path: Path) -> None:
    inv = tmp_path / "inv"
    inv.mkdir()
    (inv / "hosts.yaml").write_text("a:\n  hostname: 198.19.255.254\n  username: core\n")
    started = time.monotonic()
    proc = subprocess.run([str(BIN / "hardnir"), "audit", "-i", str(inv), "--runner", "dask", "--scheduler",
                           f"tcp://127.0.0.1:{_free_port()}", "--out", str(tmp_path / "run")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("hardnir: error: cannot reach the Dask scheduler at tcp://127.0.0.1:")
    assert proc.stderr.count("\n") == 1
    assert time.monotonic() - started < 30


def test_remediate_in_waves_then_rollback_on_an_external_cluster(
        fleet: Path, threaded: set[tuple[str, str, str, str]], cluster: Cluster, tmp_path: Path) -> None:
    """A wave's shards all finish before the next wave starts; the rollback (also on Dask) puts every host back:
    a threaded audit afterwards gives the verdicts of the first threaded audit. Runs last: it changes the fleet."""
    refused = {v[0] for v in threaded if v[3] == "error"}
    hosts = sorted({v[0] for v in threaded} - refused)[:40]
    rem = api.execute("remediate", fleet, hosts=hosts, wave_size=20, runner="dask", scheduler=cluster.address,
                      out=tmp_path / "rem")
    assert {r["host"] for r in rem.rows} == set(hosts)
    assert any(r["status"] == "fixed" for r in rem.rows)
    waves = rem.meta["waves"]
    assert [(w["wave"], len(w["hosts"]), w["ran"]) for w in waves] == [(1, 20, True), (2, 20, True)]
    first = [r for r in rem.rows if r["host"] in waves[0]["hosts"]]
    second = [r for r in rem.rows if r["host"] in waves[1]["hosts"]]
    wave1_end = max(r["started_at"].timestamp() + r["duration_s"] for r in first)
    assert min(r["started_at"].timestamp() for r in second) >= wave1_end - 0.01
    assert sum(s["hosts"] for s in rem.meta["runner"]["shards"]) == 40
    rb = api.execute("rollback", fleet, hosts=hosts, target_run=tmp_path / "rem", runner="dask",
                     scheduler=cluster.address, out=tmp_path / "rb")
    assert any(r["status"] == "restored" for r in rb.rows)
    assert not [r for r in rb.rows if r["status"] in ("error", "rollback_failed")]
    after = api.execute("audit", fleet, hosts=hosts, out=tmp_path / "after")
    assert _verdicts(after.rows) == {v for v in threaded if v[0] in hosts}


def test_shard_by_site_runs_on_the_site_worker(fleet: Path, threaded: set[tuple[str, str, str, str]],
                                                tmp_path: Path) -> None:
    """Hosts of group site-eu-1 (`hardnir_site: eu-1`) form one shard that runs on the worker started with
    `--resources site-eu-1=1`; the others are cut as usual."""
    import yaml

    inv = tmp_path / "inv"
    inv.mkdir()
    hosts = yaml.safe_load((fleet / "hosts.yaml").read_text())
    eu, chosen = sorted(hosts)[:40], sorted(hosts)[:80]
    for name in eu:
        hosts[name]["groups"] = ["site-eu-1"]
    (inv / "hosts.yaml").write_text(yaml.safe_dump(hosts))
    (inv / "groups.yaml").write_text("site-eu-1:\n  data:\n    hardnir_site: eu-1\n")
    (inv / "defaults.yaml").write_text((fleet / "defaults.yaml").read_text())
    c = Cluster(2, resources=("site-eu-1=1",))
    try:
        eu_worker = c.workers[0]
        from distributed import Client

        with Client(c.address, timeout=30) as client:
            pids = client.run(os.getpid)
        site_address = next(addr for addr, pid in pids.items() if pid == eu_worker.pid)
        outcome = api.execute("audit", inv, hosts=chosen, runner="dask", scheduler=c.address, shard_by="site-",
                              out=tmp_path / "run")
    finally:
        c.close()
    assert _verdicts(outcome.rows) == {v for v in threaded if v[0] in chosen}
    shards = outcome.meta["runner"]["shards"]
    site_shards = [s for s in shards if s["site"]]
    assert [(s["site"], s["key"], s["hosts"], s["worker"]) for s in site_shards] == [
        ("eu-1", "site-eu-1", 40, site_address)]
    assert sum(s["hosts"] for s in shards) == len(chosen) and outcome.meta["runner"]["shard_by"] == "site-"


def _hold_serial_lock(run_id: str, key: str) -> tuple[float, float]:
    """A task: take the run's serial lock for `key` from another thread (as Nornir's threads do) for 0.5 s."""
    from hardnir.dask_runner import cluster_lock

    lock = cluster_lock(run_id)
    span: list[float] = []

    def hold() -> None:
        with lock(key):
            span.append(time.time())
            time.sleep(0.5)
            span.append(time.time())

    thread = threading.Thread(target=hold)
    thread.start()
    thread.join()
    return span[0], span[1]


def test_serial_lock_is_one_across_workers(cluster: Cluster) -> None:
    """Serial controls (etcd members restarted one at a time) take a Dask Lock named after their key: two workers
    holding the same key never overlap; different keys do not wait for each other."""
    from distributed import Client

    with Client(cluster.address, timeout=30) as client:
        workers = sorted(client.scheduler_info()["workers"])
        same = [client.submit(_hold_serial_lock, "run-1", "etcd-tls:cluster:a", workers=[w], pure=False)
                for w in workers]
        first, second = sorted(f.result(timeout=60) for f in same)
        assert second[0] >= first[1]  # one after the other
        other = [client.submit(_hold_serial_lock, "run-1", f"etcd-tls:single:{w}", workers=[w], pure=False)
                 for w in workers]
        first, second = sorted(f.result(timeout=60) for f in other)
        assert second[0] < first[1]  # independent keys run side by side
