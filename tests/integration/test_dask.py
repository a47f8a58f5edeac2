"""`--runner dask` on real Dask clusters, compared host by host with the threaded runner.

On the simulated fleet (benchmarks/simfleet.py: real SSH servers on 127.0.0.1 ports 31500-31699; no lab, no root):
- an external `dask scheduler` + 2 `dask worker` processes (the CLI with --scheduler) give the threaded verdicts;
- a worker SIGKILLed mid-audit: its shard is retried on the other worker for the hosts without rows, every host
  gets its verdicts; a shard whose workers die twice gives `error` rows naming the workers and the cause;
- a scheduler lost mid-run: the finished hosts keep their rows, the others get `error` rows, exit code 5;
- an inline secret is refused under a remote scheduler, an unreachable scheduler is one line (exit 2);
- --shard-by with a site resource, and the serial lock shared by the workers.
On the lab (tests/integration/test_dask_lab.py): a LocalCluster audit, and remediate + rollback on an external
cluster with etcd members restarted one at a time.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Collection, Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("distributed")
pytest.importorskip("asyncssh")

from hardnir import api
from hardnir.cli import main
from hardnir.dask_runner import DaskRunError, topics
from tests.dask_cluster import Cluster, free_port
from tests.offline_setup import unreachable_inventory

pytestmark = pytest.mark.timeout(240)  # a bug that hangs a cluster fails its test, not the suite

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
HOSTS = 200
BASE_PORT = 31500  # above the benchmarks' 20000-30000 range, below the ephemeral ports


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
    from distributed import Client

    with Client(cluster.address, timeout=30) as client:  # the profiler that deadlocks CPython 3.11 is stopped
        assert set(client.run(_profiler_running).values()) == {False}
        # the scheduler keeps no event of the run: rows and host names were emptied from its log
        run_id = json.loads((tmp_path / "run/run.json").read_text())["run_id"]
        assert [len(client.get_events(topic)) for topic in topics(run_id)] == [0, 0, 0]


def _profiler_running(dask_worker: Any) -> bool:
    callback = dask_worker.periodic_callbacks.get("profile")
    return bool(callback is not None and callback.is_running())


def _executing(dask_worker: Any) -> list[str]:
    """On a worker (client.run): the keys of the tasks it is running now (not those only assigned to it)."""
    return [str(ts.key) for ts in dask_worker.state.executing]


def _busy(client: Any, exclude: Collection[str] = (), key: str = "") -> tuple[str, str]:
    """(worker, task key) of a worker running a shard (`key` if given) right now, waiting up to 60 s."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for worker, keys in client.run(_executing, on_error="ignore").items():
            for k in keys:
                if worker not in exclude and (not key or k == key):
                    return str(worker), k
        time.sleep(0.02)
    raise AssertionError(f"no worker ran {key or 'a shard'} within 60 s")


def _kill(pids: dict[str, int], cluster: Cluster, worker: str) -> None:
    assert pids[worker] in {w.pid for w in cluster.workers}
    os.kill(pids[worker], signal.SIGKILL)


def _run_in_thread(**kwargs: Any) -> tuple[threading.Thread, dict[str, Any]]:
    result: dict[str, Any] = {}

    def run() -> None:
        try:
            result["outcome"] = api.execute("audit", **kwargs)
        except BaseException as exc:  # the test thread reports it
            result["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    return thread, result


def test_a_worker_killed_mid_audit_loses_no_host(fleet: Path, threaded: set[tuple[str, str, str, str]],
                                                  tmp_path: Path) -> None:
    """The killed worker's shard runs again on the other worker, only for its hosts without rows: every host ends
    with the threaded verdicts, and run.json names both workers of that shard."""
    c = Cluster(2)
    try:
        from distributed import Client

        run, result = _run_in_thread(inventory=fleet, runner="dask", scheduler=c.address, workers=2,
                                     out=tmp_path / "run")
        with Client(c.address, timeout=30) as client:
            pids = client.run(os.getpid)
            victim, key = _busy(client)
            time.sleep(0.5)  # let it finish a few hosts first
            _kill(pids, c, victim)
        run.join(180)
        assert not run.is_alive() and "error" not in result, result
        outcome = result["outcome"]
        assert _verdicts(outcome.rows) == threaded  # every host, with its real verdicts
        shard = outcome.meta["runner"]["shards"][int(key.rsplit("-", 1)[1])]
        assert shard["workers"][0] == victim and len(shard["workers"]) == 2 and shard["workers"][1] != victim
        assert shard["status"] == "done"
    finally:
        c.close()


def test_a_shard_whose_workers_die_twice_gives_error_rows(fleet: Path, tmp_path: Path) -> None:
    """Kill the worker of a shard, then the worker of its retry: the shard is not run a third time; its hosts
    without rows get `error` rows that name both workers and the cause; the other shards finish on the third."""
    c = Cluster(3)
    try:
        from distributed import Client

        run, result = _run_in_thread(inventory=fleet, runner="dask", scheduler=c.address, workers=2,
                                     out=tmp_path / "run")
        with Client(c.address, timeout=30) as client:
            pids = client.run(os.getpid)
            first, key = _busy(client)
            time.sleep(0.5)  # its start (and some rows) reach the scheduler
            _kill(pids, c, first)
            second, _ = _busy(client, exclude={first}, key=key)
            time.sleep(0.5)
            _kill(pids, c, second)
        run.join(180)
        assert not run.is_alive() and "error" not in result, result
        outcome = result["outcome"]
        index = int(key.rsplit("-", 1)[1])
        shard = outcome.meta["runner"]["shards"][index]
        assert shard["status"] == "failed" and shard["workers"] == [first, second], shard
        lost = {r["host"] for r in outcome.rows if r["message"].startswith(f"shard {index} on ")}
        assert lost and all(r["status"] == "error" for r in outcome.rows if r["host"] in lost)
        message = next(r["message"] for r in outcome.rows if r["host"] in lost)
        assert first in message and second in message and "ShardGaveUp" in message and "died 2 times" in message
        hosts = {r["host"] for r in outcome.rows}
        assert len(hosts) == HOSTS  # no host lost
    finally:
        c.close()


def test_a_lost_scheduler_keeps_the_finished_rows_and_exits_5(fleet: Path, tmp_path: Path) -> None:
    c = Cluster(2)
    try:
        from distributed import Client

        run, result = _run_in_thread(inventory=fleet, runner="dask", scheduler=c.address, workers=2,
                                     out=tmp_path / "run")
        with Client(c.address, timeout=30) as client:
            _, key = _busy(client)
            _, done_topic, _ = topics(key.split("hardnir-", 1)[1].rsplit("-shard-", 1)[0])
            deadline = time.monotonic() + 60
            while not client.get_events(done_topic) and time.monotonic() < deadline:
                time.sleep(0.1)  # until a first batch of finished hosts reached the scheduler
        time.sleep(0.5)  # and the driver
        c.scheduler.kill()
        run.join(120)
        assert not run.is_alive() and "error" not in result, result
        outcome = result["outcome"]
        assert outcome.exit_code == api.EXIT_SCHEDULER_LOST
        assert {r["host"] for r in outcome.rows} == {f"sim-{i:05d}" for i in range(1, HOSTS + 1)}
        lost = [r for r in outcome.rows if "was lost mid-run" in r["message"]]
        assert lost and all(r["status"] == "error" for r in lost)
        assert any(r["status"] in ("pass", "fail") for r in outcome.rows)  # what finished is kept
        meta = json.loads((tmp_path / "run/run.json").read_text())
        assert meta["exit_code"] == api.EXIT_SCHEDULER_LOST and meta["runner"]["lost"]
    finally:
        c.close()


def _children(pid: int) -> set[int]:
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        found |= {int(c) for c in (task / "children").read_text().split()}
    return found


def test_ctrl_c_cancels_the_shards_and_writes_the_finished_rows(fleet: Path, tmp_path: Path) -> None:
    """SIGINT to the CLI mid-run (a LocalCluster of one worker process): exit 130 with one line, the run directory
    holds every host (the finished ones with their verdicts, the others with `error` rows saying so), and the
    cluster's processes are gone."""
    # The CLI as a terminal starts it: SIGINT raises KeyboardInterrupt (a test run in the background inherits
    # SIGINT ignored, and Python keeps an ignored SIGINT ignored).
    cli = ("import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
           "from hardnir.cli import main; sys.exit(main(sys.argv[1:]))")
    proc = subprocess.Popen([sys.executable, "-c", cli, "audit", "-i", str(fleet), "--runner", "dask",
                             "--dask-workers", "1", "--workers", "1", "--out", str(tmp_path / "run")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    first = proc.stderr.readline()  # the progress bar's first line: the cluster is up, shards go out
    assert "audit [" in first and " 0/200 hosts" in first, first  # (and nothing before it, e.g. no Dask warning)
    done = 0
    while not done:  # the next progress lines (every 5 s; one host at a time: 200 take longer): hosts finished
        line = proc.stderr.readline()
        assert "hosts" in line, line
        done = int(line.split("] ", 1)[1].split("/", 1)[0])
    assert done < HOSTS, "the run ended before it could be interrupted"
    cluster = _children(proc.pid)
    proc.send_signal(signal.SIGINT)
    rest = proc.stderr.read()
    assert proc.wait(120) == 130 and rest.strip().splitlines()[-1] == "hardnir: interrupted"
    meta = json.loads((tmp_path / "run/run.json").read_text())
    assert meta["runner"]["interrupted"] is True
    import pandas as pd

    rows = pd.read_parquet(tmp_path / "run/results.parquet")
    assert set(rows["host"]) == {f"sim-{i:05d}" for i in range(1, HOSTS + 1)}
    stopped = rows[rows["message"].str.contains("interrupted (Ctrl-C)", regex=False)]
    assert len(stopped) and set(stopped["status"]) == {"error"}
    assert {"pass", "fail"} <= set(rows["status"])  # what finished is kept
    deadline = time.monotonic() + 20  # the worker process and multiprocessing's resource tracker end with it
    while [pid for pid in cluster if Path(f"/proc/{pid}").exists()] and time.monotonic() < deadline:
        time.sleep(0.2)
    assert cluster and not [pid for pid in cluster if Path(f"/proc/{pid}").exists()]


CTRL_C_AT_START = """
import multiprocessing, os, signal, sys
signal.signal(signal.SIGINT, signal.default_int_handler)  # as a terminal starts it (see the test above)
from hardnir import api

def progress(total):  # called once the LocalCluster is up, before any shard goes out: Ctrl-C there
    os.kill(os.getpid(), signal.SIGINT)

try:
    api.execute("audit", sys.argv[1], runner="dask", dask_workers=1, out=sys.argv[2], progress=progress)
except KeyboardInterrupt:
    print(len(multiprocessing.active_children()))  # the cluster's worker processes still alive
    sys.exit(130)
"""


def test_ctrl_c_before_the_shards_go_out_writes_every_host_and_stops_the_cluster(fleet: Path,
                                                                                   tmp_path: Path) -> None:
    """Ctrl-C after the LocalCluster started but before its shards went out: the run directory is written (every
    host with an `error` row saying it was not run), the cluster is shut down, and the interrupt goes on up."""
    proc = subprocess.run([sys.executable, "-c", CTRL_C_AT_START, str(fleet), str(tmp_path / "run")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 130 and proc.stdout.strip() == "0", proc.stdout + proc.stderr
    meta = json.loads((tmp_path / "run/run.json").read_text())
    assert meta["runner"]["interrupted"] is True
    import pandas as pd

    rows = pd.read_parquet(tmp_path / "run/results.parquet")
    assert set(rows["host"]) == {f"sim-{i:05d}" for i in range(1, HOSTS + 1)}
    assert set(rows["status"]) == {"error"}
    assert rows["message"].str.contains("not run: interrupted (Ctrl-C)", regex=False).all()


def _spawned_workers(pid: int) -> set[int]:
    """The processes multiprocessing's spawn started under `pid`: a LocalCluster's worker processes."""
    found = set()
    for child in _children(pid):
        with contextlib.suppress(OSError):  # it ended meanwhile
            if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes():
                found.add(child)
    return found


def test_ctrl_c_while_the_local_cluster_starts_writes_every_host_and_stops_it(tmp_path: Path) -> None:
    """Ctrl-C from a terminal (SIGINT to the whole process group) while the LocalCluster is still starting (its
    worker process spawned, not yet up): the run stops there, every host written as not run, the cluster shut
    down, exit 130 with one line and no traceback (from the driver or its worker). The hosts are never reached: the
    inventory points at a closed loopback port."""
    inventory = unreachable_inventory(tmp_path / "inv", [f"h{i}" for i in range(1, 6)])
    cli = ("import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "  # as in the test above
           "from hardnir.cli import main; sys.exit(main(sys.argv[1:]))")
    with open(tmp_path / "stderr", "w+") as stderr:
        proc = subprocess.Popen([sys.executable, "-c", cli, "audit", "-i", str(inventory), "--runner", "dask",
                                 "--dask-workers", "1", "--out", str(tmp_path / "run")],
                                stdout=subprocess.DEVNULL, stderr=stderr, start_new_session=True)
        deadline = time.monotonic() + 60
        while not (workers := _spawned_workers(proc.pid)) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert workers, "no worker process was spawned"
        assert not Path(tmp_path / "stderr").read_text(), "the cluster was up already (the progress line is out)"
        os.killpg(proc.pid, signal.SIGINT)
        code = proc.wait(120)
        stderr.seek(0)
        err = stderr.read()
    assert code == 130 and err.strip().splitlines()[-1] == "hardnir: interrupted", err
    assert "Traceback" not in err, err
    meta = json.loads((tmp_path / "run/run.json").read_text())
    assert meta["runner"]["interrupted"] is True
    import pandas as pd

    rows = pd.read_parquet(tmp_path / "run/results.parquet")
    assert set(rows["host"]) == {f"h{i}" for i in range(1, 6)}
    assert set(rows["status"]) == {"error"}
    assert rows["message"].str.contains("not run: interrupted (Ctrl-C)", regex=False).all()
    deadline = time.monotonic() + 20
    while [pid for pid in workers if Path(f"/proc/{pid}").exists()] and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [pid for pid in workers if Path(f"/proc/{pid}").exists()]


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
                           f"tcp://127.0.0.1:{free_port()}", "--out", str(tmp_path / "run")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("hardnir: error: cannot reach the Dask scheduler at tcp://127.0.0.1:")
    assert proc.stderr.count("\n") == 1
    assert time.monotonic() - started < 30


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
