"""The Python API: run a runbook over an inventory, write the run directory, return the DataFrame.

`audit`, `remediate` and `rollback` return a pandas DataFrame (one row per host x control x phase) with the run
directory in `df.attrs["run_dir"]` and the exit code in `df.attrs["exit_code"]`. `execute` is the same with the
rows and metadata, for the CLI.
"""

from __future__ import annotations

import getpass
import os
import socket
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hardnir import __version__
from hardnir.control import select
from hardnir.dask_runner import INTERRUPTED
from hardnir.dates import today
from hardnir.heap import give_back_freed_memory
from hardnir.inventory import as_list, host_groups, secrets_of
from hardnir.inventory_source import open_fleet
from hardnir.run_context import RunContext, new_run_id
from hardnir.runbook import Runbook, judged_rows, runbook_named
from hardnir.waves import WaveRecord, plan_waves, ran_wave, skipped_wave, wave_note

if TYPE_CHECKING:
    from typing import TypeAlias

    import pandas as pd
    from nornir.core import Nornir

    # a SimpleInventory folder, a Nornir config file or an initialised Nornir object (its hosts are the selection)
    Source: TypeAlias = str | Path | Nornir | None

    from hardnir.control import Control
    from hardnir.dask_runner import DaskRunner
    from hardnir.waivers import Waiver

EXIT_OK = 0
EXIT_NONCOMPLIANT = 1
EXIT_USAGE = 2
EXIT_FIX_FAILED = 3
EXIT_UNREACHABLE = 4
EXIT_SCHEDULER_LOST = 5  # --runner dask: the scheduler was lost mid-run (what finished is written)


@dataclass
class RunOutcome:
    rows: list[dict[str, Any]]
    meta: dict[str, Any]
    run_dir: Path
    exit_code: int
    notes: list[str] = field(default_factory=list)

    def frame(self) -> pd.DataFrame:
        """The run's typed frame as written (redacted), read back from the run directory when asked for."""
        from hardnir.store import read_run

        df = read_run(self.run_dir)
        df.attrs["run_dir"] = str(self.run_dir)
        df.attrs["exit_code"] = self.exit_code
        return df


def exit_code(rows: Iterable[Mapping[str, Any]], judged_phases: Sequence[str] = ()) -> int:
    """4 unreachable/error, else 3 a fix or rollback failed, else 1 non-compliant, else 0.

    A runbook is judged on its `judged_phases` rows (all rows when empty) and on every error: remediate on its
    outcome (fix and verify rows, not the findings it fixed); rollback on whether the undo worked (the state it
    restores is the old, possibly non-compliant one, which is what was asked for).
    """
    statuses = {str(r["status"]) for r in judged_rows(rows, judged_phases)}
    if "error" in statuses:
        return EXIT_UNREACHABLE
    if statuses & {"fix_failed", "rollback_failed"}:
        return EXIT_FIX_FAILED
    if statuses & {"fail", "blocked", "would_fix"}:
        return EXIT_NONCOMPLIANT
    return EXIT_OK


def _waiver_lookup(waivers: Sequence[Waiver], groups: Mapping[str, Sequence[str]]) -> Callable[[str, str], str | None]:
    day = today()

    def lookup(host: str, control: str) -> str | None:
        for w in waivers:
            if w.covers(control, host, groups.get(host, ())) and not w.expired(day):
                return w.reason
        return None

    return lookup


def execute(
    runbook: str | Runbook,
    inventory: Source = None,
    *,
    config: str | Path | None = None,
    controls: str | Iterable[str] | None = None,
    exclude: str | Iterable[str] | None = None,
    severity: str | Iterable[str] | None = None,
    hosts: str | Iterable[str] | None = None,
    groups: str | Iterable[str] | None = None,
    workers: int | None = None,
    waivers: str | Path | None = None,
    strict_waivers: bool = False,
    out: str | Path | None = None,
    dry_run: bool = False,
    allow_lockout: bool = False,
    wave_size: int | None = None,
    max_fail_percent: float | None = None,
    target_run: str | Path | None = None,
    progress: Callable[[int], Any] | None = None,
    processors: Sequence[Any] = (),
    runner: str = "threaded",
    scheduler: str | None = None,
    shard_by: str | None = None,
    dask_workers: int | None = None,
) -> RunOutcome:
    """Run one runbook end to end. Raises ValueError subclasses (one-line messages) on bad input.

    `inventory` is a SimpleInventory folder, a Nornir config file or an initialised Nornir object (whose hosts,
    e.g. an `nr.filter(...)`, are the selection); `config` names a Nornir config file instead.

    `processors` are Nornir processors attached to the run next to those of a Nornir object passed in (e.g.
    nornir_rich's, or one that logs every task); `progress(total)` makes hardnir's own progress processor.
    `runner="dask"` runs the hosts as shards on Dask distributed (`hardnir.dask_runner`): a LocalCluster, or the
    cluster at `scheduler`; `shard_by` (a group prefix or host data key) keeps a site's hosts in one shard;
    `dask_workers` sizes the LocalCluster (worker processes; default one per core).
    Everything that can be checked without a host is checked before the first connection: parameters,
    waivers, the run directory (`strict_waivers`: a waiver naming an unknown host or group is an error).
    """
    from hardnir.control import control_record
    from hardnir.hostdata import validate
    from hardnir.runprep import RUN_LOG, paramiko_to, prepare_run_dir, unknown_scopes
    from hardnir.store import write_run
    from hardnir.waivers import waive_rows

    book = runbook_named(runbook) if isinstance(runbook, str) else runbook
    selected = select(controls, exclude, severity)
    fleet, full = open_fleet(inventory, config=config, workers=workers, hosts=as_list(hosts), groups=as_list(groups))
    nr = fleet.nr
    validate(nr, fleet.files)  # every parameter checked before any connection
    host_names = fleet.host_names
    groups_of = host_groups(full)
    loaded_waivers: list[Waiver] = []
    notes: list[str] = []
    if waivers:
        from hardnir.control import catalogue
        from hardnir.waivers import WaiverError, load_waivers

        loaded_waivers = load_waivers(Path(waivers), list(catalogue()))
        unknown = unknown_scopes(loaded_waivers, full.inventory.hosts, full.inventory.groups)
        if unknown and strict_waivers:
            raise WaiverError(f"{waivers}: {unknown[0]} (--strict-waivers)")
        notes += [f"warning: {waivers}: {line}" for line in unknown]
    rollback_of = ""
    if book.undoes:
        if target_run is None:
            raise ValueError(f"{book.name} needs --run RUN_DIR (the {book.undoes} run to undo)")
        from hardnir.store import read_meta

        target_meta = read_meta(Path(target_run))
        rollback_of = str(target_meta.get("run_id", ""))
        if target_meta.get("runbook") != book.undoes:
            raise ValueError(f"{target_run}: not a {book.undoes} run (runbook {target_meta.get('runbook')!r})")
        recorded = target_meta.get("controls")
        if isinstance(recorded, Mapping) and not controls:
            selected = [c for c in selected if c.id in recorded]
    waived = _waiver_lookup(loaded_waivers, groups_of)
    dask = _dask_runner(nr, runner, scheduler, shard_by, workers, waived, dask_workers)
    run_id = new_run_id(book.name)
    run_dir = prepare_run_dir(Path(out) if out else Path("runs") / run_id)
    if dask:
        dask.connect()  # an unreachable scheduler is a one-line error before any host is touched
    started = datetime.now(UTC)
    ctx = RunContext(
        run_id=run_id,
        runbook=book.name,
        controls=selected,
        dry_run=dry_run,
        allow_lockout=allow_lockout,
        waived=waived,
    )
    waves: list[WaveRecord] = []
    t0 = time.monotonic()
    ticker = None
    try:
        ticker = progress(len(host_names)) if progress else None  # a Nornir processor (hardnir.progress)
        if ticker:  # it counts threaded hosts; Dask hosts and hosts a stopped wave skipped arrive here only
            ctx.on_host_done = ticker.update
        nr = nr.with_processors([*nr.processors, *processors, *([ticker] if ticker else [])])
        with paramiko_to(run_dir / RUN_LOG):
            run_hosts = _host_runner(nr, ctx, book, rollback_of, dask)
            if book.waves:
                waves = _run_waves(run_hosts, ctx, book, plan_waves(host_names, wave_size), max_fail_percent)
                notes += [wave_note(w) for w in waves if w["ran"]]
                notes += list(dict.fromkeys(w["stop_reason"] for w in waves if w["stop_reason"]))
            else:
                run_hosts(host_names)
    except KeyboardInterrupt:
        if not dask:
            raise
        dask.interrupted = True  # Ctrl-C before the shards went out: the rows below say so, then it stops
    finally:
        fleet.nr.close_connections(on_good=True, on_failed=True)  # without the processors: not a runbook task
        if dask:
            dask.close()
        if ticker:
            ticker.close()
    rows: list[dict[str, Any]] = []
    for host in host_names:
        host_rows = ctx.rows_by_host.get(host)
        if host_rows is None:
            why = fleet.unusable.get(host, f"not run: {INTERRUPTED}" if dask and dask.interrupted
                                     else "no result: the runner lost this host")
            host_rows = ctx.error_rows(host, book.phases, why, time.time())
        rows.extend(host_rows)
    waive_rows(rows, loaded_waivers, groups_of, today())  # in place: one copy of the run's rows
    code = EXIT_SCHEDULER_LOST if dask and dask.lost else exit_code(rows, book.judged_phases)
    meta: dict[str, Any] = {
        "run_id": run_id,
        "runbook": book.name,
        "operator": os.environ.get("SUDO_USER") or getpass.getuser(),
        "client_host": socket.gethostname(),
        "started_at": started.isoformat(),
        "finished_at": datetime.now(UTC).isoformat(),
        "wall_time_s": round(time.monotonic() - t0, 3),
        "hardnir_version": __version__,
        "inventory": fleet.source,
        "inventory_digest": fleet.digest,
        "hosts": host_names,
        "controls": {c.id: c.meta.version for c in selected},
        "plugins": _plugins_used(book, selected),
        "options": {
            "controls": as_list(controls) if controls else None,
            "exclude": as_list(exclude) if exclude else None,
            "severity": as_list(severity) if severity else None,
            "hosts": as_list(hosts),
            "groups": as_list(groups),
            "workers": workers,
            "config": str(config) if config else None,
            "waivers": str(waivers) if waivers else None,
            "dry_run": dry_run,
            "allow_lockout": allow_lockout,
            "wave_size": wave_size,
            "max_fail_percent": max_fail_percent,
            "rollback_of": rollback_of or None,
        },
        "notes": notes,
        "waves": waves,
        "runner": dask.record() if dask else {"name": "threaded"},
        "exit_code": code,
    }
    write_run(run_dir, rows, meta, secrets=secrets_of(nr), controls=[control_record(c.meta) for c in selected])
    if dask and dask.interrupted:  # Ctrl-C during a Dask run: the finished rows are written, then it stops
        raise KeyboardInterrupt
    return RunOutcome(rows, meta, run_dir, code, notes)


def _plugins_used(book: Runbook, selected: Sequence[Control]) -> dict[str, Any]:
    """The packages outside hardnir that this run used (controls and runbook), with their versions."""
    def package(distribution: str, version: str) -> dict[str, str]:
        return {"distribution": distribution, "version": version}

    return {
        "controls": {c.id: package(c.distribution, c.version) for c in selected if c.distribution},
        "runbook": package(book.distribution, book.version) if book.distribution else None,
    }


def _host_failed(rows: Sequence[Mapping[str, Any]]) -> bool:
    return any(r["status"] in ("error", "fix_failed") for r in rows)


def _dask_runner(nr: Any, runner: str, scheduler: str | None, shard_by: str | None, workers: int | None,
                 waived: Callable[[str, str], str | None], dask_workers: int | None) -> DaskRunner | None:
    """The Dask driver for `runner="dask"` (checked, not yet connected), None for the threaded runner."""
    from hardnir.dask_runner import RUNNERS, DaskRunner

    if runner not in RUNNERS:
        raise ValueError(f"unknown runner {runner!r}; use {' or '.join(RUNNERS)}")
    if runner == "threaded":
        if scheduler or shard_by or dask_workers:
            raise ValueError("--scheduler, --shard-by and --dask-workers need --runner dask")
        return None
    return DaskRunner(nr, scheduler=scheduler, shard_by=shard_by, workers=workers, local_workers=dask_workers,
                      waived=waived)


def _host_runner(nr: Any, ctx: RunContext, book: Runbook, target_run: str,
                 dask: DaskRunner | None) -> Callable[[Sequence[str]], None]:
    """`run(hosts)`: the runbook on these hosts, their rows recorded in `ctx` (threaded here, or Dask shards)."""
    extra = {"target_run": target_run} if book.undoes else {}

    def run(hosts: Sequence[str]) -> None:
        if dask:
            dask.run_hosts(hosts, ctx, book.phases, target_run)
            return
        members = set(hosts)
        chosen = nr if members >= set(nr.inventory.hosts) else nr.filter(filter_func=lambda h: h.name in members)
        chosen.run(task=book.host_task, ctx=ctx, **extra)

    return run


def _run_waves(run_hosts: Callable[[Sequence[str]], None], ctx: RunContext, book: Runbook, waves: list[list[str]],
               max_fail_percent: float | None) -> list[WaveRecord]:
    """Run in waves (the first is the canary); a wave ends (all its shards too) before the next starts; stop
    before the next wave once failures pass the limit."""
    records: list[WaveRecord] = []
    stop_reason = ""
    for number, wave in enumerate(waves, start=1):
        if stop_reason:
            now = time.time()
            for host in wave:
                ctx.record(host, ctx.error_rows(host, book.phases, stop_reason, now))
            records.append(skipped_wave(number, len(waves), wave, stop_reason))
            continue
        run_hosts(wave)
        failed = [h for h in wave if _host_failed(ctx.rows_by_host.get(h, [{"status": "error"}]))]
        record = ran_wave(number, len(waves), wave, failed)
        records.append(record)
        percent = record["failed_pct"] or 0.0
        if max_fail_percent is not None and percent > max_fail_percent and number < len(waves):
            stop_reason = (f"not run: remediation stopped after wave {number} because {percent:.0f}% of its hosts "
                           f"failed (limit {max_fail_percent:g}%)")
    return records


def _frame_of(outcome: RunOutcome) -> pd.DataFrame:
    """The run's DataFrame; the run's rows are freed and the C heap gives their memory back (a notebook or a
    service runs one audit after another in one process: its memory must not creep up from run to run)."""
    frame = outcome.frame()
    outcome.rows = []
    give_back_freed_memory()
    return frame


def audit(inventory: Source = None, **options: Any) -> pd.DataFrame:
    """Read-only audit of the inventory; returns the run's DataFrame."""
    return _frame_of(execute("audit", inventory, **options))


def remediate(inventory: Source = None, **options: Any) -> pd.DataFrame:
    """check -> fix -> verify (pass dry_run=True to only plan); returns the run's DataFrame."""
    return _frame_of(execute("remediate", inventory, **options))


def rollback(inventory: Source, run: str | Path, **options: Any) -> pd.DataFrame:
    """Undo the remediation run in `run` (its run directory); returns the rollback run's DataFrame."""
    return _frame_of(execute("rollback", inventory, target_run=run, **options))


def gather(inventory: Source = None, *, config: str | Path | None = None, hosts: str | Iterable[str] | None = None,
           controls: str | Iterable[str] | None = None) -> str:
    """The raw probe items of each host as YAML (`{host: {item: {rc, text}}}`), e.g. to record test fixtures."""
    return dump_facts(collect_facts(inventory, config=config, hosts=hosts, controls=controls))


def dump_facts(found: Mapping[str, Any]) -> str:
    import yaml

    return str(yaml.safe_dump(dict(found), sort_keys=True, allow_unicode=True, width=1000))


def collect_facts(inventory: Source = None, *, config: str | Path | None = None,
                  hosts: str | Iterable[str] | None = None,
                  controls: str | Iterable[str] | None = None) -> dict[str, Any]:
    """`{host: {item: {rc, text}}}`, or `{host: {"error": why}}` for a host that could not be read."""
    from nornir.core.exceptions import NornirSubTaskError
    from nornir.core.task import Result, Task

    from hardnir.hostdata import validate
    from hardnir.nornir_tasks import gather_facts, subtask_error

    selected = select(controls)
    fleet, _ = open_fleet(inventory, config=config, hosts=as_list(hosts))
    nr = fleet.nr
    validate(nr, fleet.files)
    found: dict[str, Any] = {host: {"error": why} for host, why in fleet.unusable.items()}

    def collect(task: Task) -> Result:
        try:
            facts = task.run(task=gather_facts, controls=selected)[0].result
            found[task.host.name] = {k: {"rc": v.rc, "text": v.text} for k, v in sorted(facts.items.items())}
        except NornirSubTaskError as exc:
            found[task.host.name] = {"error": subtask_error(exc)}
        return Result(host=task.host)

    try:
        nr.run(task=collect)
    finally:
        nr.close_connections(on_good=True, on_failed=True)
    return found
