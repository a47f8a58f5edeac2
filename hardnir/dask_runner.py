"""Run a runbook's hosts on Dask distributed: shards of plain data go out, result rows come back.

The driver (the `hardnir` process) has loaded and validated the inventory and the controls. It cuts the hosts into
shards (`hardnir.shards`) and submits one task per shard. A shard is plain data: its hosts' inventory entries, the
groups they belong to and the defaults (as validated), the options, the run id, the control ids and the waivers
that apply to its hosts. No Nornir or paramiko object and no connection travels. The worker builds its own Nornir
from that data and runs the same runbook task with the threaded runner; each host's rows (plain dicts) go to the
driver in events, batched (at most 0.5 s or 50 hosts after a host is done). A shard whose worker died runs once
more, for its hosts without rows (under remediate, a host the lost attempt had started to fix is not fixed again:
`rerun_host`); a shard that fails twice, fails, runs past its time limit or is cut off by a lost scheduler or
Ctrl-C gives `error` rows (naming the shard, its workers and the cause) for its hosts without rows, so no host is
ever lost and the driver never waits forever.

Without a scheduler address a `LocalCluster` (one worker process per core or `--dask-workers`, one shard at a time
per worker, each shard with `--workers` parallel hosts) is started on 127.0.0.1 and closed at the end. With an
address (`--scheduler`, or Dask's own `DASK_SCHEDULER_ADDRESS`) the
cluster is used and left running; a password or passphrase given inline in the inventory is refused there, since
it would travel to remote machines (`*_env` and `*_file` secrets are resolved on the worker). Shards of hosts that
carry `hardnir_site: S` ask for one unit of the worker resource `site-S` on such a cluster.

`distributed` is imported only here, and only when a Dask run is asked for: hardnir works without it.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import shlex
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from hardnir.inventory import DEFAULT_WORKERS
from hardnir.shards import SHARDS_PER_WORKER, SITE_KEY, Shard, plan_shards, shard_key
from hardnir.ssh import (
    CONNECT_GRACE_S,
    CONNECTION_NAME,
    DEFAULT_COMMAND_TIMEOUT,
    DEFAULT_CONNECT_TIMEOUT,
    EXIT_EOF_GRACE_S,
    KILL_GRACE_S,
    STALL_GRACE_S,
)

RUNNERS = ("threaded", "dask")
SCHEDULER_ENV = "DASK_SCHEDULER_ADDRESS"
SECRET_KEYS = ("password", "passphrase", "sudo_password")
CONNECT_TIMEOUT_S = 10
MAX_ATTEMPTS = 2  # a shard whose worker died is retried once (its hosts without rows), then gives error rows
POLL_S = 0.5  # how often the driver looks at finished shards, time limits and the scheduler
BATCH_S = 0.5  # a worker sends its finished hosts' rows at most this long after they finish...
BATCH_HOSTS = 50  # ...or as soon as this many are waiting: one event per batch, not per host
TRUNCATE_S = 5.0  # how often the driver empties the scheduler's log of row events it has received
LOST_AFTER_S = 20.0  # a scheduler unreachable this long (the client retries meanwhile) is lost
SHARD_SETUP_S = 60.0  # allowance for a worker to start a shard (imports, Nornir) within its time limit
INTERRUPTED = "interrupted (Ctrl-C) before this host finished"
READ_ONLY_RUNBOOKS = ("audit",)  # a lost attempt of any other runbook may have changed hosts (unless a dry run)
GUARDED_RUNBOOK = "remediate"  # its fixes leave a record on the host before they change it (hardnir.fixes)
MAY_HAVE_CHANGED = "`hardnir rollback --run` undoes what this run recorded on the host"
RERUN_NOTE = "re-run after a worker died"  # starts the message of the rows of a host a shard's retry ran again
PROFILE_SETTING = "distributed.worker.profile.enabled"
# A LocalCluster runs SSH work, not data work: Dask's periodic machinery, tuned for data work, cost about as much
# CPU as the hosts' own rows (see benchmarks/README.md, "Dask runner"). The nanny passes this to its worker.
LOCAL_CLUSTER_CONFIG: dict[str, Any] = {
    "distributed.scheduler.allowed-failures": MAX_ATTEMPTS - 1,
    PROFILE_SETTING: False,  # the statistical profiler: see stop_profiler
    "distributed.scheduler.work-stealing": False,  # shards are queued on the scheduler; nothing to steal
    "distributed.admin.system-monitor.interval": "5s",  # psutil samples of CPU, memory, fds, net (was 500 ms)
    "distributed.admin.system-monitor.disk": False,  # host-wide disk counters: of no use here
    "distributed.admin.tick.interval": "500ms",  # event-loop health checks (was 20 ms)
    "distributed.worker.memory.monitor-interval": "1s",  # nanny and worker memory checks (was 100 ms)
    "distributed.deploy.cluster-repr-interval": "5s",  # the LocalCluster's notebook widget refresh (was 500 ms)
}
PROFILER_CALLBACKS = ("profile", "profile-cycle")  # the worker's periodic callbacks of its profiler
INSTALL_HINT = "pip install 'hardnir[dask]'"


class DaskRunError(ValueError):
    """A Dask run cannot start (missing extra, unreachable scheduler, inline secret): one line."""


def _distributed() -> Any:
    try:
        import distributed
    except ImportError:
        raise DaskRunError(f"--runner dask needs Dask distributed, which is not installed: {INSTALL_HINT}") from None
    return distributed


def scheduler_address(scheduler: str | None) -> str | None:
    """The scheduler to use: the one given, else Dask's DASK_SCHEDULER_ADDRESS, else None (a LocalCluster)."""
    return scheduler or os.environ.get(SCHEDULER_ENV) or None


def inline_secrets(nr: Any) -> list[str]:
    """Where the inventory gives a password or passphrase inline, e.g. `host 'a': connection_options.hardnir...`."""
    inv = nr.inventory
    elements = [("defaults", inv.defaults.dict())]
    elements += [(f"group {name!r}", group.dict()) for name, group in inv.groups.items()]
    elements += [(f"host {name!r}", host.dict()) for name, host in inv.hosts.items()]
    found: list[str] = []

    def walk(where: str, path: tuple[str, ...], value: Any) -> None:
        if isinstance(value, Mapping):
            for key, item in value.items():
                if key in SECRET_KEYS and item not in (None, ""):
                    found.append(f"{where}: {'.'.join((*path, str(key)))}")
                else:
                    walk(where, (*path, str(key)), item)

    for where, data in elements:
        walk(where, (), data)
    return found


def _entry(element: Any) -> dict[str, Any]:
    data: dict[str, Any] = element.dict()
    data.pop("name", None)
    return data


def shard_payload(nr: Any, shard: Shard, base: Mapping[str, Any]) -> dict[str, Any]:
    """One shard as plain data: `base` (options, run id, control ids, defaults) plus its hosts and their groups."""
    inv = nr.inventory
    hosts = {name: _entry(inv.hosts[name]) for name in shard.hosts}
    groups: dict[str, dict[str, Any]] = {}
    todo = [g for entry in hosts.values() for g in entry.get("groups") or []]
    while todo:
        name = todo.pop()
        if name not in groups:
            groups[name] = _entry(inv.groups[name])
            todo.extend(groups[name].get("groups") or [])
    waived = base["waived"]
    return {**base, "shard": shard.index, "hosts": hosts, "groups": groups,
            "waived": {h: waived[h] for h in shard.hosts if h in waived}}


def topics(run_id: str) -> tuple[str, str, str]:
    """The run's three event topics: shard attempts (`["start", shard, worker]`), hosts done (`[shard, [host...]]`,
    kept by the scheduler for a retried shard) and their rows (`[shard, [[host, rows]...]]`, which the driver
    empties from the scheduler's log as it goes, so the scheduler never holds every row of a run)."""
    return f"hardnir-{run_id}-shards", f"hardnir-{run_id}-done", f"hardnir-{run_id}-rows"


def encode_rows(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Rows as msgpack-able data for a Dask event (`started_at` as ISO text); `decode_rows` reverses it."""
    return [{**r, "started_at": r["started_at"].isoformat()} for r in rows]


def decode_rows(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    from datetime import datetime

    return [{**r, "started_at": datetime.fromisoformat(r["started_at"])} for r in rows]


class ShardGaveUp(RuntimeError):
    """A shard whose workers died MAX_ATTEMPTS times is not run again (the driver writes `error` rows)."""


def _earlier_deaths(client: Any, key: str) -> int:
    """How many workers died while running this task: the scheduler's own count (a worker killed at once may never
    have sent its shard's start event). The function travels by value: the scheduler needs no hardnir."""
    return int(client.run_on_scheduler(
        lambda dask_scheduler, key=key: getattr(dask_scheduler.tasks.get(key), "suspicious", 0)))


def _attempt_workers(client: Any, index: int, shards_topic: str) -> list[str]:
    """The workers that started this shard before (from the scheduler's log of shard starts)."""
    return [str(msg[2]) for _, msg in client.get_events(shards_topic) if msg[0] == "start" and msg[1] == index]


def changes_hosts(runbook: str, dry_run: bool) -> bool:
    """Whether an attempt of this run that was cut off may have changed its hosts already."""
    return runbook not in READ_ONLY_RUNBOOKS and not dry_run


def rerun_note(index: int, workers: Sequence[str]) -> str:
    """What the rows of a host run again after its shard's worker died say first."""
    died = ", ".join(workers) or "a worker that never reported its start"
    return f"{RERUN_NOTE} (shard {index} on {died})"


def run_records(task: Any, run_id: str) -> list[str]:
    """The controls this run has a record of on the host: the apply script of a fix writes its record (the rollback
    script and the backups, under STATE_ROOT/<run>/<control>) before it changes anything (`hardnir.fixes`)."""
    from hardnir.fixes import STATE_ROOT
    from hardnir.nornir_tasks import connection

    listing = connection(task).run(f"ls -1 {shlex.quote(f'{STATE_ROOT}/{run_id}')} 2>/dev/null; true", sudo=True)
    if listing.exit_status != 0:  # as root, like the fixes: a login user may not read it; sudo itself failed
        raise RuntimeError(f"exit {listing.exit_status}: {listing.stderr.strip()[:200]}")
    return sorted(set(listing.stdout.split()))


def rerun_host(task: Any, book: Any, ctx: Any, note: str, **kwargs: Any) -> Any:
    """A host of a remediate shard whose worker died, run again: as usual when this run changed nothing on it yet
    (no record of the run on the host). Else it is not run again: a second fix would overwrite the first one's
    backups, the pre-state `hardnir rollback` restores, and the lost attempt's rows are gone; it gets `error` rows
    that say which controls were being changed."""
    from nornir.core.task import Result

    from hardnir.run_context import finish_host

    started = time.time()
    try:
        records = run_records(task, ctx.run_id)
    except Exception as exc:  # cannot connect, or the command failed: the host task would fail the same way
        cause = f"{exc.__class__.__name__}: {exc}".strip().splitlines()[0]
        why = f"could not look for this run's record on the host ({cause}), so it is not fixed"
    else:
        if not records:
            return book.host_task(task, ctx=ctx, **kwargs)
        why = (f"the lost attempt had started to fix it ({', '.join(records)}), so it is not fixed again "
               "(`hardnir audit` shows where it stands)")
    rows = ctx.error_rows(task.host.name, book.phases, f"{note}: {why}; {MAY_HAVE_CHANGED}"[:500], started)
    finish_host(task, ctx, rows)
    return Result(host=task.host, result=rows, failed=True)


def noted(rows: Sequence[Mapping[str, Any]], note: str) -> Sequence[Mapping[str, Any]]:
    """The rows with `note` before each message (the same rows when there is no note)."""
    if not note:
        return rows
    return [{**r, "message": f"{note}; {r['message']}" if r.get("message") else note} for r in rows]


def _hosts_with_rows(client: Any, index: int, done_topic: str) -> set[str]:
    return {str(host) for _, msg in client.get_events(done_topic) if msg[0] == index for host in msg[1]}


def truncate_events(client: Any, topic: str) -> None:
    """Empty the scheduler's log of one topic (subscribers got its events already). The function travels by
    value; a scheduler without this (private) broker keeps its log (Dask's `events-log-length` bounds it)."""
    def truncate(dask_scheduler: Any, topic: str = topic) -> None:
        broker = getattr(dask_scheduler, "_broker", None)
        if broker is not None:
            broker.truncate(topic)

    client.run_on_scheduler(truncate)


class HostBatches:
    """A worker's finished hosts, sent to the driver in batches: when BATCH_HOSTS wait, BATCH_S after the first
    of a batch finished, and at the end of the shard. One event carries the rows, one the host names."""

    def __init__(self, worker: Any, index: int, done_topic: str, rows_topic: str, note: str = "") -> None:
        self.worker, self.index, self.done_topic, self.rows_topic = worker, index, done_topic, rows_topic
        self.note = note  # put before each row's message (a re-run host: `rerun_note`)
        self.waiting: list[tuple[str, list[dict[str, Any]]]] = []
        self.lock = threading.Lock()
        self.timer: threading.Timer | None = None

    def add(self, host: str, rows: list[dict[str, Any]]) -> None:
        with self.lock:
            self.waiting.append((host, encode_rows(noted(rows, self.note))))
            full = len(self.waiting) >= BATCH_HOSTS
            if not full and self.timer is None:
                self.timer = threading.Timer(BATCH_S, self.flush)
                self.timer.daemon = True
                self.timer.start()
        if full:
            self.flush()

    def flush(self) -> None:
        with self.lock:
            batch, self.waiting = self.waiting, []
            if self.timer is not None:
                self.timer.cancel()
                self.timer = None
        if batch:  # rows first: a worker that dies between the two events has its hosts run again, not lost
            self.worker.log_event(self.rows_topic, [self.index, [[host, rows] for host, rows in batch]])
            self.worker.log_event(self.done_topic, [self.index, [host for host, _ in batch]])


def run_shard(payload: Mapping[str, Any]) -> dict[str, Any]:
    """On a worker: build Nornir from the shard's data, run the runbook, return `{worker, ran}`.

    Each host's rows leave the worker soon after the host is done (batched: `HostBatches`), so a worker that dies
    loses no host finished more than BATCH_S before. A retried shard (its worker died) runs only the hosts without
    rows yet, from their check. Under remediate each first gets a look for this run's record on the host
    (`rerun_host`): a host the lost attempt had started to fix is not fixed again; under other runbooks that change
    hosts the rows say they come from a re-run.
    Outside a worker (no Dask) the rows come back in the result instead.
    """
    from hardnir.control import catalogue
    from hardnir.inventory import nornir_from
    from hardnir.run_context import RunContext
    from hardnir.runbook import runbook_named

    try:
        from distributed import get_worker

        current: Any = get_worker()
        worker = str(current.address)
    except (ImportError, ValueError):
        current, worker = None, "local"
    index = int(payload["shard"])
    shards_topic, done_topic, rows_topic = topics(payload["run_id"])
    hosts = dict(payload["hosts"])
    rerun = ""  # on a retry that may find hosts changed by the lost attempt: `rerun_note`
    if current is not None:
        from distributed import get_client

        client = get_client()
        deaths = _earlier_deaths(client, str(current.get_current_task()))
        if deaths >= MAX_ATTEMPTS:
            raise ShardGaveUp(f"its workers died {deaths} times while running it; not run again")
        if deaths:  # a retry: only the hosts whose rows did not reach the driver
            done = _hosts_with_rows(client, index, done_topic)
            hosts = {name: entry for name, entry in hosts.items() if name not in done}
            if changes_hosts(payload["runbook"], payload["dry_run"]):
                rerun = rerun_note(index, _attempt_workers(client, index, shards_topic))
        stop_profiler(current)
        current.log_event(shards_topic, ["start", index, worker])

    book = runbook_named(payload["runbook"])
    task, kwargs = book.host_task, {"target_run": payload["target_run"]} if book.undoes else {}
    if rerun and book.name == GUARDED_RUNBOOK:
        task, kwargs = rerun_host, {**kwargs, "book": book, "note": rerun}
    note = f"{rerun}; {MAY_HAVE_CHANGED}" if rerun and book.name != GUARDED_RUNBOOK else ""
    batches = HostBatches(current, index, done_topic, rows_topic, note) if current is not None else None

    known = catalogue()
    waived: Mapping[str, Mapping[str, str]] = payload["waived"]
    ctx = RunContext(
        run_id=payload["run_id"],
        runbook=payload["runbook"],
        controls=[known[c] for c in payload["controls"]],
        dry_run=payload["dry_run"],
        allow_lockout=payload["allow_lockout"],
        waived=lambda host, control: waived.get(host, {}).get(control),
        on_host_done=batches.add if batches else (lambda host, rows: None),
    )
    if current is not None:  # serial controls take one lock per key across all workers (only fixes take it)
        ctx.serial_lock = cluster_lock(payload["run_id"])
    if hosts:
        nr = nornir_from(hosts, payload["groups"], payload["defaults"], payload["workers"])
        try:
            nr.run(task=task, ctx=ctx, **kwargs)
        finally:
            if batches:
                batches.flush()
            nr.close_connections(on_good=True, on_failed=True)
    return {"worker": worker, "ran": list(hosts), "rows": {} if current is not None else ctx.rows_by_host}


def stop_profiler(worker: Any) -> None:
    """Stop the worker's statistical profiler before the shard starts its threads.

    Every 10 ms it calls `sys._current_frames()`, which on CPython 3.11 can deadlock the whole worker process
    against thread creation (python/cpython#106883, dask/distributed#8616: the call holds the interpreter's
    thread-list lock while a garbage collection runs Python weakref callbacks that wait for the GIL; a thread being
    started holds the GIL and waits for that lock; 3.12 runs the collector only at safe points). A shard starts
    hundreds of threads (Nornir's pool, one paramiko transport and timers per connection): that deadlock froze a
    LocalCluster worker mid-shard and hung the run. The profile is of no use for SSH work anyway. (A LocalCluster's
    workers start with it disabled; this covers external workers, from their first shard on.)
    """
    stopped = threading.Event()

    def stop() -> None:
        for name in PROFILER_CALLBACKS:
            callback = worker.periodic_callbacks.get(name)
            if callback is not None:
                callback.stop()
        stopped.set()

    worker.loop.add_callback(stop)  # periodic callbacks belong to the worker's event loop thread
    stopped.wait(CONNECT_TIMEOUT_S)


def cluster_lock(run_id: str) -> Callable[[str], Any]:
    """On a worker: `lock(key)`, a Dask distributed Lock per serial key of this run, shared by every worker, so a
    serial control (etcd members restarted one at a time per cluster) stays serial across shards."""
    from distributed import Lock, get_client

    client = get_client()  # in the task's thread: Nornir's threads reach the scheduler through its connection
    return lambda key: Lock(  # type: ignore[no-untyped-call]
        f"hardnir-serial-{run_id}-{key}", scheduler_rpc=client.scheduler, loop=client.loop)


@contextlib.contextmanager
def _sigint_deferred() -> Iterator[threading.Event]:
    """Ctrl-C noted, not raised, while a LocalCluster starts (the event yielded is set), and kept from its workers.

    A KeyboardInterrupt raised inside `LocalCluster()` would leave a half-started cluster that nothing can close,
    so the handler only notes the Ctrl-C; the driver stops the run once the call returns (and shuts the cluster
    down). SIGINT is also blocked in this thread meanwhile: the threads started in the call (Dask's event loop and
    the threads that spawn the worker processes) inherit the block, and so do the worker processes (a signal mask
    survives fork and exec), also those a nanny restarts later. So a terminal's Ctrl-C, sent to the whole process
    group, stays the driver's to handle: it cancels the shards and stops the cluster itself, without a traceback
    from every worker. On the way out the block is lifted, and a Ctrl-C that waited meanwhile reaches the handler
    then. Outside the main thread, or with SIGINT ignored (a background job), nothing changes.
    """
    pressed = threading.Event()
    previous = signal.getsignal(signal.SIGINT)
    if threading.current_thread() is not threading.main_thread() or previous in (signal.SIG_IGN, None):
        yield pressed
        return
    from multiprocessing import resource_tracker

    resource_tracker.ensure_running()  # started later, in the block, it would lift the block in its thread
    signal.signal(signal.SIGINT, lambda signum, frame: pressed.set())
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield pressed
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)  # a Ctrl-C pending meanwhile runs the handler here
        signal.signal(signal.SIGINT, previous)


class DaskRunner:
    """The driver side of one Dask run: check, connect, run host lists as shards, record what happened."""

    def __init__(self, nr: Any, *, scheduler: str | None = None, shard_by: str | None = None,
                 workers: int | None = None, local_workers: int | None = None,
                 waived: Callable[[str, str], str | None] | None = None) -> None:
        _distributed()
        self.nr = nr
        self.address = scheduler_address(scheduler)
        self.shard_by = shard_by
        self.workers = workers
        self.local_workers = local_workers or os.cpu_count() or 1
        self.waived = waived or (lambda host, control: None)
        self.client: Any = None
        self.cluster: Any = None
        self.worker_count = 0
        self.shards: list[dict[str, Any]] = []
        self.recorded: set[str] = set()  # hosts whose rows are in the run (from a worker, or error rows)
        self.started: dict[int, float] = {}  # shard -> when its current attempt started (monotonic)
        self.lock = threading.Lock()
        self.lost = ""  # why the scheduler was lost mid-run ("" while it is there)
        self.interrupted = False
        if self.address:
            inline = inline_secrets(nr)
            if inline:
                raise DaskRunError(f"inline secret in the inventory ({inline[0]}) refused with a remote Dask "
                                   "scheduler: give it as *_env or *_file, resolved on the worker")

    def connect(self) -> None:
        """Reach the scheduler (a one-line DaskRunError if it cannot be reached), or start a LocalCluster.

        Ctrl-C meanwhile, also while the LocalCluster starts (`_sigint_deferred`), marks the run interrupted and
        closes what is up: every host then gets an `interrupted` row."""
        try:
            self.client = self._remote_client() if self.address else self._local_client()
            self.worker_count = len(self.client.scheduler_info().get("workers", {}))
        except KeyboardInterrupt:
            self.interrupted = True
            self.close()

    def _remote_client(self) -> Any:
        try:
            return _distributed().Client(self.address, timeout=CONNECT_TIMEOUT_S, set_as_default=False)
        except (OSError, TimeoutError, ValueError) as exc:
            cause = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
            raise DaskRunError(f"cannot reach the Dask scheduler at {self.address}: {cause}"[:300]) from None

    def _local_client(self) -> Any:
        """Start the LocalCluster (`self.cluster`, so that `close` can stop it) and connect to it."""
        import dask

        distributed = _distributed()
        with dask.config.set(LOCAL_CLUSTER_CONFIG), _sigint_deferred() as pressed:
            self.cluster = distributed.LocalCluster(
                n_workers=self.local_workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                dashboard_address=":0", scheduler_kwargs={"dashboard": False},  # no port 8787 taken or warned
                silence_logs=logging.ERROR)
        if pressed.is_set():
            raise KeyboardInterrupt
        return distributed.Client(self.cluster, set_as_default=False)

    def close(self) -> None:
        """Disconnect; a LocalCluster is shut down, a cluster given by address is left running."""
        if self.client is not None:
            with contextlib.suppress(Exception):  # a lost scheduler must not turn the end of the run into an error
                self.client.close(timeout=CONNECT_TIMEOUT_S)
        if self.cluster is not None:
            self.cluster.close()
        self.client = self.cluster = None

    def record(self) -> dict[str, Any]:
        """What run.json keeps of this runner."""
        return {"name": "dask", "scheduler": self.address or "local", "workers": self.worker_count,
                "shard_by": self.shard_by, "shards": self.shards, "lost": self.lost or None,
                "interrupted": self.interrupted}

    def plan(self, hosts: Sequence[str]) -> list[Shard]:
        inv = self.nr.inventory.hosts
        by = self.shard_by
        keys = {h: shard_key([g.name for g in inv[h].groups], inv[h].get(by) if by else None, by) for h in hosts}
        sites = {h: str(inv[h].get(SITE_KEY) or "") for h in hosts}
        shards = plan_shards(hosts, SHARDS_PER_WORKER * max(self.worker_count, 1), keys, sites)
        first = len(self.shards)
        return [Shard(first + s.index, s.hosts, s.key, s.site) for s in shards]

    def run_hosts(self, hosts: Sequence[str], ctx: Any, phases: Sequence[str], target_run: str = "") -> None:
        """Run `ctx.runbook` on `hosts` as shards; every host gets its rows recorded in `ctx` (or error rows)."""
        if self.lost or self.interrupted or self.client is None:  # lost, Ctrl-C (maybe while connecting): no run
            reason = self.lost or INTERRUPTED
            for host in hosts:
                self._record(ctx, host, ctx.error_rows(host, phases, f"not run: {reason}", time.time()))
            return
        shards_topic, done_topic, rows_topic = topics(ctx.run_id)
        self.client.subscribe_topic(shards_topic, self._shard_event)
        self.client.subscribe_topic(rows_topic, lambda event: self._rows_event(ctx, event))
        futures: dict[Any, Shard] = {}
        try:  # Ctrl-C from here on (while shards go out, or while they run): what finished is kept, see below
            self._submit(hosts, ctx, target_run, futures)
            self._wait(futures, ctx, phases, rows_topic)
        except KeyboardInterrupt:  # cancel what runs, keep what finished, say so for the rest
            self.interrupted = True
            with contextlib.suppress(Exception):
                self.client.cancel(list(futures))
            for shard in futures.values():
                self._fail(shard, ctx, phases, f"not finished: {INTERRUPTED}", "cancelled")
            now = time.time()
            for host in hosts:  # hosts of shards not yet submitted
                self._record(ctx, host, ctx.error_rows(host, phases, f"not run: {INTERRUPTED}", now))
        finally:
            for topic in (shards_topic, done_topic, rows_topic):
                with contextlib.suppress(Exception):
                    self.client.unsubscribe_topic(topic)
                if not self.lost:
                    with contextlib.suppress(Exception):
                        truncate_events(self.client, topic)

    def _submit(self, hosts: Sequence[str], ctx: Any, target_run: str, futures: dict[Any, Shard]) -> None:
        """Plan the shards and submit one task per shard, each added to `futures` as it goes out."""
        base = {
            "run_id": ctx.run_id, "runbook": ctx.runbook, "controls": [c.id for c in ctx.controls],
            "dry_run": ctx.dry_run, "allow_lockout": ctx.allow_lockout, "target_run": target_run,
            "workers": self.workers, "defaults": _entry(self.nr.inventory.defaults),
            "waived": self._waivers(hosts, [c.id for c in ctx.controls]),
        }
        serial = ctx.runbook == "remediate" and any(c.meta.serial for c in ctx.controls)
        for shard in self.plan(hosts):
            self.shards.append({"shard": shard.index, "hosts": len(shard.hosts), "key": shard.key,
                                "site": shard.site, "workers": [], "worker": "", "status": "pending", "error": "",
                                "limit_s": self._limit(shard, ctx, len(hosts) if serial else 0)})
            future = self.client.submit(
                run_shard, shard_payload(self.nr, shard, base), key=f"hardnir-{ctx.run_id}-shard-{shard.index}",
                pure=False, resources=(shard.resources or None) if self.address else None)
            futures[future] = shard

    def _wait(self, futures: dict[Any, Shard], ctx: Any, phases: Sequence[str], rows_topic: str) -> None:
        """Record shards as they finish. Never waits forever: a shard running past its limit is cancelled, a lost
        scheduler or a cluster left without workers ends the wait; the hosts without rows get `error` rows.
        Every TRUNCATE_S the scheduler's log of row events is emptied (the driver has them)."""
        distributed = _distributed()
        done = distributed.as_completed(list(futures), loop=self.client.loop)
        away_since: float | None = None
        truncated = time.monotonic()
        while futures:
            for future in done.next_batch(block=False):
                shard = futures.pop(future, None)
                if shard is not None:
                    self._finish(shard, future, ctx, phases)
            now = time.monotonic()
            for future, shard in list(futures.items()):
                started = self.started.get(shard.index)
                limit = self.shards[shard.index]["limit_s"]
                if started is not None and now - started > limit:
                    self.client.cancel([future])
                    del futures[future]
                    self._fail(shard, ctx, phases, f"no result within {limit:g} s (the limit its hosts' "
                               "connect and command timeouts allow); cancelled", "cancelled")
            gone = self._scheduler_gone()
            if not gone:
                away_since = None
                if now - truncated > TRUNCATE_S:
                    truncated = now
                    truncate_events(self.client, rows_topic)
            else:
                away_since = away_since or now
                if futures and (gone == "closed" or now - away_since > LOST_AFTER_S):
                    self.lost = f"the Dask scheduler {self.address or 'local'} was lost mid-run ({gone})"
                    for shard in futures.values():
                        self._fail(shard, ctx, phases, f"not finished: {self.lost}", "lost")
                    futures.clear()
            time.sleep(POLL_S)

    def _scheduler_gone(self) -> str:
        """'' while the client talks to the scheduler, else its status ('connecting' while it retries, 'closed')."""
        status = str(getattr(self.client, "status", "running"))
        return "" if status in ("running", "newly-created") else status

    def _limit(self, shard: Shard, ctx: Any, serial_hosts: int) -> float:
        inv = self.nr.inventory.hosts
        connect, command = 0.0, 0.0
        for host in shard.hosts:
            extras = inv[host].get_connection_parameters(CONNECTION_NAME).extras or {}
            connect = max(connect, float(extras.get("connect_timeout", DEFAULT_CONNECT_TIMEOUT)))
            command = max(command, float(extras.get("command_timeout", DEFAULT_COMMAND_TIMEOUT)))
        return shard_limit(ctx.runbook, len(ctx.controls), len(shard.hosts), self.workers or DEFAULT_WORKERS,
                           connect, command, serial_hosts)

    def _shard_event(self, event: Any) -> None:
        """A worker started (an attempt of) a shard: note which, and when (its time limit counts from now)."""
        kind, index, worker = event[1]
        if kind == "start" and index < len(self.shards):
            with self.lock:
                self.started[index] = time.monotonic()
                self.shards[index]["workers"].append(worker)
                self.shards[index]["worker"] = worker

    def _rows_event(self, ctx: Any, event: Any) -> None:
        _, batch = event[1]
        for host, rows in batch:
            self._record(ctx, str(host), decode_rows(rows))

    def _record(self, ctx: Any, host: str, rows: list[dict[str, Any]]) -> None:
        """Keep a host's first rows (a retried or cancelled shard may report a host again; the first rows win)."""
        with self.lock:
            if host in self.recorded:
                return
            self.recorded.add(host)
        ctx.record(host, rows)

    def _waivers(self, hosts: Sequence[str], controls: Sequence[str]) -> dict[str, dict[str, str]]:
        found: dict[str, dict[str, str]] = {}
        for host in hosts:
            for control in controls:
                reason = self.waived(host, control)
                if reason:
                    found.setdefault(host, {})[control] = reason
        return found

    def _finish(self, shard: Shard, future: Any, ctx: Any, phases: Sequence[str]) -> None:
        try:
            result = future.result()
        except Exception as exc:  # the shard's task raised, or its workers died (KilledWorker, ShardGaveUp)
            cause = f"{exc.__class__.__name__}: {exc}".strip().splitlines()[0]
            gone = self._scheduler_gone() or ("scheduler" if "scheduler-connection-lost" in cause else "")
            if gone:  # the client cancels every future when it loses the scheduler
                self.lost = self.lost or f"the Dask scheduler {self.address or 'local'} was lost mid-run ({gone})"
                self._fail(shard, ctx, phases, f"not finished: {self.lost}", "lost")
            else:
                self._fail(shard, ctx, phases, f"failed: {cause}")
            return
        worker = str(result["worker"])
        rows: Mapping[str, list[dict[str, Any]]] = result["rows"]
        now = time.time()
        for host in shard.hosts:
            self._record(ctx, host, rows.get(host) or ctx.error_rows(
                host, phases, f"shard {shard.index} on worker {worker}: no rows arrived for this host", now))
        self.shards[shard.index].update(worker=worker, status="done")

    def _fail(self, shard: Shard, ctx: Any, phases: Sequence[str], what: str, status: str = "failed") -> None:
        """`error` rows for the shard's hosts that have none, naming the shard, its worker(s) and the cause."""
        record = self.shards[shard.index]
        workers = ", ".join(record["workers"]) or "no worker (not started)"
        message = f"shard {shard.index} on {workers}: {what}"[:300]
        if record["workers"] and changes_hosts(ctx.runbook, ctx.dry_run):  # it ran: it may have changed hosts
            message += f"; this host may have been changed: {MAY_HAVE_CHANGED}"
        now = time.time()
        for host in shard.hosts:
            self._record(ctx, host, ctx.error_rows(host, phases, message, now))
        record.update(status=status, error=message)


def shard_limit(runbook: str, controls: int, hosts: int, threads: int, connect_s: float, command_s: float,
                serial_hosts: int = 0) -> float:
    """How long a shard may run before the driver gives up on it: a safety net, never reached while the SSH
    timeouts hold. Per host: two connections (a jump host and the target) and every command the runbook may run,
    each with its full budget; the hosts run `threads` at a time; remediate's serial controls may wait for one fix
    of every host of the run; plus a fixed allowance for the worker to build Nornir."""
    command = command_s + KILL_GRACE_S + 5 + STALL_GRACE_S + EXIT_EOF_GRACE_S
    commands = {"audit": 1, "remediate": 2 + 4 * controls, "rollback": 1 + 2 * controls}.get(runbook, 1 + 4 * controls)
    per_host = 2 * (connect_s + CONNECT_GRACE_S) + commands * command
    return round(math.ceil(hosts / max(threads, 1)) * per_host + serial_hosts * command + SHARD_SETUP_S, 1)
