"""Run a runbook's hosts on Dask distributed: shards of plain data go out, result rows come back.

The driver (the `hardnir` process) has loaded and validated the inventory and the controls. It cuts the hosts into
shards (`hardnir.shards`) and submits one task per shard. A shard is plain data: its hosts' inventory entries, the
groups they belong to and the defaults (as validated), the options, the run id, the control ids and the waivers
that apply to its hosts. No Nornir or paramiko object and no connection travels. The worker builds its own Nornir
from that data, runs the same runbook task with the threaded runner, and returns its rows (plain dicts). The driver
records them as shards finish (`as_completed`); a shard that failed, or whose worker died, gives `error` rows for
its hosts, so no host is ever lost.

Without a scheduler address a `LocalCluster` (one worker process per core, one shard at a time per worker, each
shard with `--workers` parallel hosts) is started on 127.0.0.1 and closed at the end; a worker that dies is
replaced and its shard retried once. With an address (`--scheduler`, or Dask's own `DASK_SCHEDULER_ADDRESS`) the
cluster is used and left running; a password or passphrase given inline in the inventory is refused there, since
it would travel to remote machines (`*_env` and `*_file` secrets are resolved on the worker). Shards of hosts that
carry `hardnir_site: S` ask for one unit of the worker resource `site-S` on such a cluster.

`distributed` is imported only here, and only when a Dask run is asked for: hardnir works without it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from hardnir.shards import SHARDS_PER_WORKER, SITE_KEY, Shard, plan_shards, shard_key

RUNNERS = ("threaded", "dask")
SCHEDULER_ENV = "DASK_SCHEDULER_ADDRESS"
SECRET_KEYS = ("password", "passphrase", "sudo_password")
CONNECT_TIMEOUT_S = 10
LOCAL_ALLOWED_FAILURES = 1  # a shard whose worker died is retried once on another worker, then gives error rows
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


def run_shard(payload: Mapping[str, Any]) -> dict[str, Any]:
    """On a worker: build Nornir from the shard's data, run the runbook, return `{worker, rows: {host: rows}}`."""
    from hardnir.control import catalogue
    from hardnir.engine import RunContext
    from hardnir.inventory import nornir_from

    try:
        from distributed import get_worker

        current: Any = get_worker()
        worker = str(current.address)
    except (ImportError, ValueError):
        current, worker = None, "local"

    def report(host: str, rows: list[dict[str, Any]]) -> None:  # each finished host, for the driver's progress
        if current is not None:
            current.log_event(payload["progress_topic"], [host, sorted({str(r["status"]) for r in rows})])

    known = catalogue()
    serial: Callable[[str], Any] | None = None
    if current is not None and payload["runbook"] == "remediate":
        serial = cluster_lock(payload["run_id"])
    waived: Mapping[str, Mapping[str, str]] = payload["waived"]
    ctx = RunContext(
        run_id=payload["run_id"],
        runbook=payload["runbook"],
        controls=[known[c] for c in payload["controls"]],
        dry_run=payload["dry_run"],
        allow_lockout=payload["allow_lockout"],
        waived=lambda host, control: waived.get(host, {}).get(control),
        on_host_done=report,
    )
    if serial is not None:
        ctx.serial_lock = serial
    nr = nornir_from(payload["hosts"], payload["groups"], payload["defaults"], payload["workers"])
    try:
        nr.run(task=runbook_task(payload["runbook"]), ctx=ctx,
               **({"target_run": payload["target_run"]} if payload["runbook"] == "rollback" else {}))
    finally:
        nr.close_connections(on_good=True, on_failed=True)
    return {"worker": worker, "rows": ctx.rows_by_host}


def cluster_lock(run_id: str) -> Callable[[str], Any]:
    """On a worker: `lock(key)`, a Dask distributed Lock per serial key of this run, shared by every worker, so a
    serial control (etcd members restarted one at a time per cluster) stays serial across shards."""
    from distributed import Lock, get_client

    client = get_client()  # in the task's thread: Nornir's threads reach the scheduler through its connection
    return lambda key: Lock(  # type: ignore[no-untyped-call]
        f"hardnir-serial-{run_id}-{key}", scheduler_rpc=client.scheduler, loop=client.loop)


@contextlib.contextmanager
def _sigint_ignored() -> Iterator[None]:
    """SIGINT ignored while worker processes are spawned (a terminal sends Ctrl-C to the whole process group; the
    driver cancels the shards and stops the cluster itself, without a traceback from every worker)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def runbook_task(runbook: str) -> Callable[..., Any]:
    if runbook == "audit":
        from runbooks.audit import audit_host

        return audit_host
    if runbook == "remediate":
        from runbooks.remediate import remediate_host

        return remediate_host
    if runbook == "rollback":
        from runbooks.rollback import rollback_host

        return rollback_host
    raise ValueError(f"unknown runbook {runbook!r}")


class DaskRunner:
    """The driver side of one Dask run: check, connect, run host lists as shards, record what happened."""

    def __init__(self, nr: Any, *, scheduler: str | None = None, shard_by: str | None = None,
                 workers: int | None = None, waived: Callable[[str, str], str | None] | None = None) -> None:
        _distributed()
        self.nr = nr
        self.address = scheduler_address(scheduler)
        self.shard_by = shard_by
        self.workers = workers
        self.waived = waived or (lambda host, control: None)
        self.client: Any = None
        self.cluster: Any = None
        self.worker_count = 0
        self.shards: list[dict[str, Any]] = []
        self.reported: set[str] = set()  # hosts the progress bar has counted
        self.lock = threading.Lock()
        if self.address:
            inline = inline_secrets(nr)
            if inline:
                raise DaskRunError(f"inline secret in the inventory ({inline[0]}) refused with a remote Dask "
                                   "scheduler: give it as *_env or *_file, resolved on the worker")

    def connect(self) -> None:
        """Reach the scheduler (a one-line DaskRunError if it cannot be reached), or start a LocalCluster."""
        distributed = _distributed()
        if self.address:
            try:
                self.client = distributed.Client(self.address, timeout=CONNECT_TIMEOUT_S, set_as_default=False)
            except (OSError, TimeoutError, ValueError) as exc:
                cause = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
                raise DaskRunError(f"cannot reach the Dask scheduler at {self.address}: {cause}"[:300]) from None
        else:
            import dask

            with dask.config.set({"distributed.scheduler.allowed-failures": LOCAL_ALLOWED_FAILURES}), \
                    _sigint_ignored():  # Ctrl-C is the driver's to handle; the workers inherit "ignore"
                self.cluster = distributed.LocalCluster(
                    n_workers=os.cpu_count() or 1, threads_per_worker=1, processes=True, host="127.0.0.1",
                    dashboard_address=None, silence_logs=logging.ERROR)
            self.client = distributed.Client(self.cluster, set_as_default=False)
        self.worker_count = len(self.client.scheduler_info().get("workers", {}))

    def close(self) -> None:
        """Disconnect; a LocalCluster is shut down, a cluster given by address is left running."""
        if self.client is not None:
            self.client.close()
        if self.cluster is not None:
            self.cluster.close()
        self.client = self.cluster = None

    def record(self) -> dict[str, Any]:
        """What run.json keeps of this runner."""
        return {"name": "dask", "scheduler": self.address or "local", "workers": self.worker_count,
                "shard_by": self.shard_by, "shards": self.shards}

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
        distributed = _distributed()
        base = {
            "run_id": ctx.run_id, "runbook": ctx.runbook, "controls": [c.id for c in ctx.controls],
            "dry_run": ctx.dry_run, "allow_lockout": ctx.allow_lockout, "target_run": target_run,
            "workers": self.workers, "defaults": _entry(self.nr.inventory.defaults),
            "waived": self._waivers(hosts, [c.id for c in ctx.controls]),
            "progress_topic": f"hardnir-progress-{ctx.run_id}",
        }
        futures: dict[Any, Shard] = {}
        self.client.subscribe_topic(base["progress_topic"], lambda event: self._progress(ctx, *event[1]))
        for shard in self.plan(hosts):
            self.shards.append({"shard": shard.index, "hosts": len(shard.hosts), "key": shard.key,
                                "site": shard.site, "worker": "", "status": "pending", "error": ""})
            future = self.client.submit(
                run_shard, shard_payload(self.nr, shard, base), key=f"hardnir-{ctx.run_id}-shard-{shard.index}",
                pure=False, resources=(shard.resources or None) if self.address else None)
            futures[future] = shard
        try:
            for future in distributed.as_completed(list(futures), loop=self.client.loop):
                self._finish(futures.pop(future), future, ctx, phases)
        except KeyboardInterrupt:
            self.client.cancel(list(futures))
            raise
        except Exception as exc:  # the scheduler was lost: what finished is kept, the rest are errors
            cause = f"{exc.__class__.__name__}: {exc}".splitlines()[0]
            for shard in futures.values():
                self._fail(shard, ctx, phases, f"Dask run ended before this shard finished ({cause})"[:300])
        finally:
            with contextlib.suppress(Exception):
                self.client.unsubscribe_topic(base["progress_topic"])

    def _progress(self, ctx: Any, host: str, statuses: Sequence[str]) -> None:
        """A worker finished `host`: count it now (its rows come with its shard)."""
        with self.lock:
            if host in self.reported:
                return
            self.reported.add(host)
        ctx.on_host_done(host, [{"status": s} for s in statuses])

    def _record(self, ctx: Any, host: str, rows: list[dict[str, Any]]) -> None:
        """Keep a host's rows in `ctx`; the progress bar counts it unless a worker's report already did."""
        with self.lock:
            counted = host in self.reported
            self.reported.add(host)
        if counted:
            with ctx.lock:
                ctx.rows_by_host[host] = rows
        else:
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
        except Exception as exc:  # the shard's task raised, or its workers died (KilledWorker)
            cause = f"{exc.__class__.__name__}: {exc}".strip().splitlines()[0]
            self._fail(shard, ctx, phases, f"shard {shard.index} failed: {cause}"[:300])
            return
        worker = str(result["worker"])
        rows: Mapping[str, list[dict[str, Any]]] = result["rows"]
        now = time.time()
        for host in shard.hosts:
            self._record(ctx, host, rows.get(host) or ctx.error_rows(
                host, phases, f"no result for this host from shard {shard.index} on worker {worker}", now))
        self.shards[shard.index].update(worker=worker, status="done")

    def _fail(self, shard: Shard, ctx: Any, phases: Sequence[str], message: str) -> None:
        now = time.time()
        for host in shard.hosts:
            self._record(ctx, host, ctx.error_rows(host, phases, message, now))
        self.shards[shard.index].update(status="failed", error=message)

