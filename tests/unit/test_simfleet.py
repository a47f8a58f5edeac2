"""The simulated fleet the scale benchmark uses, end to end at a small size: a real asyncssh server per host on
127.0.0.1, public-key auth, strict host keys; hardnir audits it, remediates it and rolls it back, and the faulty
hosts (refused, dropped mid-output) get their rows like every other host."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import hardnir
from hardnir.control import catalogue

pytest.importorskip("asyncssh")

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
HOSTS = 24


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    workdir = tmp_path_factory.mktemp("simfleet")
    proc = subprocess.Popen(
        [sys.executable, str(BENCH / "simfleet.py"), "--hosts", str(HOSTS), "--workdir", str(workdir),
         "--base-port", "31000", "--inventory-sizes", str(HOSTS), "--refuse", "0.1", "--drop", "0.1",
         "--seed", "3"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.startswith("READY"), proc.stderr.read() if proc.stderr else line
    yield workdir
    proc.terminate()
    proc.wait(30)


def _faults(workdir: Path) -> dict[str, str]:
    hosts = json.loads((workdir / "hosts.json").read_text())
    return {f"sim-{h['index'] + 1:05d}": h["fault"] for h in hosts}


def test_audit_gives_every_host_its_rows(fleet: Path) -> None:
    faults = _faults(fleet)
    assert {"refuse", "drop"} <= set(faults.values())  # the seed puts both faults in this fleet
    df = hardnir.audit(fleet / f"inventory-{HOSTS}", out=fleet / "audit", workers=8)
    assert sorted(df["host"].unique()) == sorted(faults)
    assert (df.groupby("host").size() == len(catalogue())).all()
    for host, fault in faults.items():
        statuses = set(df.loc[df["host"] == host, "status"].astype(str))
        messages = " ".join(df.loc[df["host"] == host, "message"].astype(str))
        if fault == "refuse":
            assert statuses == {"error"} and "Connection refused" in messages
        elif fault == "drop":
            assert statuses == {"error"}
        else:
            assert "error" not in statuses and "fail" in statuses  # recorded lab states, all non-compliant
    assert (df["host_key"].astype(str).str.startswith("SHA256:") | (df["status"] == "error")).all()


def test_remediate_then_rollback(fleet: Path) -> None:
    healthy = [h for h, fault in _faults(fleet).items() if not fault][:6]
    df = hardnir.remediate(fleet / f"inventory-{HOSTS}", hosts=healthy, out=fleet / "remediate", workers=4)
    assert (df.groupby("host").size() == 3 * len(catalogue())).all() and sorted(df["host"].unique()) == sorted(healthy)
    fixes = df[df["phase"] == "fix"]
    fixed = fixes[fixes["status"] == "fixed"]
    # The inventory carries the lab's TLS inputs: every TLS fix is planned and sent; only core-wheel (the
    # lockout guard: the tool logs in as core) stays blocked.
    assert {"etcd-tls", "fleet-etcd-tls", "locksmith-etcd-tls", "zincati-tls"} <= set(fixed["control"].astype(str))
    assert set(fixes.loc[fixes["status"] == "blocked", "control"].astype(str)) <= {"core-wheel"}
    verify = df[df["phase"] == "verify"]
    assert (verify.loc[fixes["status"].eq("fixed").to_numpy(), "status"] == "pass").all()
    back = hardnir.rollback(fleet / f"inventory-{HOSTS}", run=fleet / "remediate", out=fleet / "rollback",
                            hosts=healthy, workers=4)
    rolled = back[back["phase"] == "rollback"]
    assert len(rolled) == len(catalogue()) * len(healthy)
    assert rolled["status"].isin(["restored", "unchanged"]).all()
    # Each fix applied is restored by its own rollback; the others have nothing to restore.
    assert (sorted(zip(rolled.loc[rolled["status"] == "restored", "host"].astype(str),
                       rolled.loc[rolled["status"] == "restored", "control"].astype(str), strict=True))
            == sorted(zip(fixed["host"].astype(str), fixed["control"].astype(str), strict=True)))
    after = back[back["phase"] == "verify"].set_index(["host", "control"])["status"].astype(str)
    before = df[df["phase"] == "check"].set_index(["host", "control"])["status"].astype(str)
    assert after.sort_index().equals(before.sort_index())  # the hosts answer as they did before the fixes
