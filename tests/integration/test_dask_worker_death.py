"""A LocalCluster worker process SIGKILLed mid-shard (`--runner dask`), under audit and under remediate.

The simulated fleet (benchmarks/simfleet.py on 127.0.0.1 ports 31800-31999) runs here with a hook: it logs every
probe and fix script it answers (host, control) and, once armed, holds its answer to the Nth one until the test
says go. The test kills the only worker process while it waits on that answer, so the moment is exact: the held
host has no rows yet, and under remediate its fix is already applied on the (simulated) host. The nanny starts a
new worker, the shard runs again for its hosts without rows.

What must hold: every host has exactly one row per control and phase (none lost, none twice), audit gives the
threaded verdicts, no fix is applied twice on a host, a fix applied by the lost attempt is named in the rows of
the re-run (which finds the host compliant), and `rollback` of the run still undoes it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("distributed")
pytest.importorskip("asyncssh")

from hardnir import api
from hardnir.dask_runner import RERUN_NOTE
from tests.integration.test_dask import _spawned_workers

pytestmark = pytest.mark.timeout(180)

REPO = Path(__file__).resolve().parents[2]
HOSTS = 40
AUDIT_PORT, REMEDIATE_PORT = 31800, 31900  # this module's share of the simulated fleets' ports

# simfleet with a hook on Fleet.answer: argv is simfleet's, the hook's files come in the environment.
HOOKED_SIMFLEET = """
import os, re, sys, time
from pathlib import Path
sys.path.insert(0, os.environ["SIM_BENCHMARKS"])
import simfleet
from hardnir import probe

log, arm, go = (Path(os.environ[k]) for k in ("SIM_LOG", "SIM_ARM", "SIM_GO"))
kind_held, nth = os.environ["SIM_HOLD_KIND"], int(os.environ["SIM_HOLD_AT"])
seen = {"probe": 0, "fix": 0}
records = {}  # host -> the controls whose fix left its record on the host (hardnir.fixes: under STATE_ROOT/run/)
original = simfleet.Fleet.answer

def answer(self, host, command):
    script = simfleet.script_of(command)
    fix = script.startswith("set -u\\numask 022\\nR=")
    name = f"sim-{host.index + 1:05d}"
    if script.startswith("ls -1 /var/lib/hardnir/runs/"):  # hardnir.dask_runner.run_records
        with open(log, "a") as f:
            f.write(f"records {name} -\\n")
        return "".join(f"{c}\\n" for c in sorted(records.get(name, ()))), 0
    kind = "fix" if fix else "probe" if probe.names_from_script(script) is not None else ""
    out = original(self, host, command)
    if kind:
        control = re.search(r"^R=\\S+/(\\S+)$", script, re.M).group(1) if fix else "-"
        if fix:
            records.setdefault(name, set()).add(control)
        with open(log, "a") as f:
            f.write(f"{kind} {name} {control}\\n")
        if arm.exists():
            seen[kind] += 1
            if kind == kind_held and seen[kind] == nth:  # hold every host's answer (one event loop) until go
                with open(log, "a") as f:
                    f.write(f"held {name} {control}\\n")
                deadline = time.monotonic() + 60
                while not go.exists() and time.monotonic() < deadline:
                    time.sleep(0.02)
    return out

simfleet.Fleet.answer = answer
sys.exit(simfleet.main(sys.argv[1:]))
"""


@dataclass
class Fleet:
    inventory: Path
    work: Path

    @property
    def log(self) -> list[tuple[str, str, str]]:
        path = self.work / "answers.log"
        text = path.read_text() if path.exists() else ""
        return [(kind, host, control) for kind, host, control in (line.split() for line in text.splitlines())]

    def arm(self) -> None:
        (self.work / "arm").touch()

    def go(self) -> None:
        (self.work / "go").touch()


def _fleet(work: Path, port: int, kind: str, nth: int) -> Iterator[Fleet]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "SIM_BENCHMARKS": str(REPO / "benchmarks"),
           "SIM_LOG": str(work / "answers.log"), "SIM_ARM": str(work / "arm"), "SIM_GO": str(work / "go"),
           "SIM_HOLD_KIND": kind, "SIM_HOLD_AT": str(nth)}
    proc = subprocess.Popen([sys.executable, "-c", HOOKED_SIMFLEET, "--hosts", str(HOSTS), "--workdir", str(work),
                             "--base-port", str(port), "--inventory-sizes", str(HOSTS), "--refuse", "0.05"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("READY"), f"simfleet did not start: {line!r}"
        yield Fleet(work / f"inventory-{HOSTS}", work)
    finally:
        proc.terminate()
        proc.wait(30)


@pytest.fixture
def audit_fleet(tmp_path: Path) -> Iterator[Fleet]:
    (tmp_path / "audit-fleet").mkdir()
    yield from _fleet(tmp_path / "audit-fleet", AUDIT_PORT, "probe", 12)


@pytest.fixture
def remediate_fleet(tmp_path: Path) -> Iterator[Fleet]:
    (tmp_path / "remediate-fleet").mkdir()
    yield from _fleet(tmp_path / "remediate-fleet", REMEDIATE_PORT, "fix", 3)


def _kill_worker_when_held(fleet: Fleet, **run: Any) -> tuple[dict[str, Any], tuple[str, str]]:
    """Run `api.execute` on a LocalCluster of one worker process (in a thread); when the fleet holds its answer,
    SIGKILL that worker, then let the fleet go on. Gives the run's result and the held (host, control)."""
    result: dict[str, Any] = {}

    def execute() -> None:
        try:
            result["outcome"] = api.execute(run.pop("runbook"), fleet.inventory, runner="dask", dask_workers=1,
                                            workers=4, **run)
        except BaseException as exc:  # the test thread reports it
            result["error"] = exc

    thread = threading.Thread(target=execute)
    thread.start()
    try:
        deadline = time.monotonic() + 90
        while not (held := [(h, c) for kind, h, c in fleet.log if kind == "held"]):
            assert thread.is_alive() and time.monotonic() < deadline, ("the fleet held no answer", result)
            time.sleep(0.02)
        workers = _spawned_workers(os.getpid())
        assert len(workers) == 1, workers
        os.kill(workers.pop(), signal.SIGKILL)
    finally:
        fleet.go()
        thread.join(120)
    assert not thread.is_alive() and "error" not in result, result
    return result, held[0]


def _each_row_once(rows: list[dict[str, Any]], controls: int, phases: tuple[str, ...]) -> None:
    counts = Counter((r["host"], r["control"], r["phase"]) for r in rows)
    assert set(counts.values()) == {1}, [k for k, n in counts.items() if n > 1]  # none twice
    assert {r["host"] for r in rows} == {f"sim-{i:05d}" for i in range(1, HOSTS + 1)}  # none lost
    assert len(counts) == HOSTS * controls * len(phases)
    assert {r["phase"] for r in rows} == set(phases)


def _started(message: str) -> list[str]:
    """The controls a re-run's message says the lost attempt had started to fix (every fix it applied on the host
    before it died: the held one, and any finished before it)."""
    return message.split("had started to fix it (")[1].split(")")[0].split(", ")


def _retried_shards(outcome: Any) -> list[dict[str, Any]]:
    """The run.json records of the shards the killed worker held: two attempts each, done on the second. (Its
    threads can run more than one shard at a time; each one it held when it died is run again.)"""
    retried = [s for s in outcome.meta["runner"]["shards"] if len(s["workers"]) > 1]
    assert retried and all(s["status"] == "done" and len(s["workers"]) == 2 for s in retried), \
        outcome.meta["runner"]["shards"]
    return retried


def test_a_worker_killed_mid_audit_gives_every_host_its_verdicts_once(audit_fleet: Fleet, tmp_path: Path) -> None:
    threaded = api.execute("audit", audit_fleet.inventory, out=tmp_path / "threaded")
    expected = {(r["host"], r["control"], r["phase"], r["status"]) for r in threaded.rows}
    audit_fleet.arm()
    result, (held, _) = _kill_worker_when_held(audit_fleet, runbook="audit", out=tmp_path / "run")
    outcome = result["outcome"]
    controls = len(outcome.meta["controls"])
    _each_row_once(outcome.rows, controls, ("check",))
    assert {(r["host"], r["control"], r["phase"], r["status"]) for r in outcome.rows} == expected
    _retried_shards(outcome)
    probes = Counter(h for kind, h, _ in audit_fleet.log if kind == "probe")
    assert probes[held] >= 3  # threaded, the killed attempt, the re-run: the held host was run again
    assert all(not r["message"].startswith(RERUN_NOTE) for r in outcome.rows)  # audit changes nothing: no note
    assert {p.name for p in (tmp_path / "run").iterdir()} >= {"run.json", "results.parquet"}


def test_a_worker_killed_mid_fix_applies_no_fix_twice_and_keeps_its_rollback(remediate_fleet: Fleet,
                                                                             tmp_path: Path) -> None:
    """The worker dies while the held host's fix is applied (the fleet applied it; no rows left the worker). The
    retry looks for the run's record on each host it runs again: the held host has one, so it is not fixed again
    and gets `error` rows naming the control and the dead worker; the others are remediated as usual (no record:
    nothing was changed). No fix is applied twice, and `rollback` of the run restores the held host."""
    remediate_fleet.arm()
    result, (held, control) = _kill_worker_when_held(remediate_fleet, runbook="remediate", out=tmp_path / "run")
    outcome = result["outcome"]
    controls = len(outcome.meta["controls"])
    _each_row_once(outcome.rows, controls, ("check", "fix", "verify"))
    fixes = Counter((h, c) for kind, h, c in remediate_fleet.log if kind == "fix")
    assert fixes[(held, control)] == 1 and set(fixes.values()) == {1}, fixes  # no fix applied twice
    rows = {(r["host"], r["control"], r["phase"]): r for r in outcome.rows}
    held_rows = [r for r in outcome.rows if r["host"] == held]
    assert {r["status"] for r in held_rows} == {"error"}
    message = held_rows[0]["message"]
    assert any(message.startswith(f"{RERUN_NOTE} (shard {shard['shard']} on {shard['workers'][0]})")
               for shard in _retried_shards(outcome)), message
    assert control in _started(message) and "hardnir rollback --run" in message, message  # maybe others too
    for host, fixed in fixes:  # every fix applied has its `fixed` row, or its host's rows say it was cut off
        row = rows[(host, fixed, "fix")]  # (the held host, and any other whose fix the lost attempt applied)
        assert row["status"] == "fixed" or (row["status"] == "error" and row["message"].startswith(RERUN_NOTE)
                                            and fixed in _started(row["message"])), row
    rerun = {h for kind, h, _ in remediate_fleet.log if kind == "records"}  # the hosts the retry ran again
    assert held in rerun and len(rerun) > 1
    assert all(rows[(h, c, "fix")]["status"] in ("fixed", "unchanged", "fix_failed", "blocked")
               for h in rerun - {held} for c in outcome.meta["controls"]
               if rows[(h, c, "check")]["status"] != "error")  # no record: remediated as usual
    back = api.execute("rollback", remediate_fleet.inventory, target_run=tmp_path / "run", hosts=[held],
                       out=tmp_path / "rollback")
    assert any(r["status"] == "restored" for r in back.rows), back.rows  # the lost attempt's fix is undone
