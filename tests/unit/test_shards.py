"""Sharding for the Dask runner (pure), the runner options' checks, and hardnir without Dask installed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hardnir import api
from hardnir.dask_runner import decode_rows, encode_rows, shard_limit
from hardnir.shards import Shard, plan_shards, shard_key

NAMES = [f"h{i:03d}" for i in range(100)]


def test_plain_cut_gives_about_the_target_count_in_order() -> None:
    shards = plan_shards(NAMES, 8)
    assert len(shards) == 8
    assert [h for s in shards for h in s.hosts] == NAMES
    assert [s.index for s in shards] == list(range(8))
    assert max(len(s.hosts) for s in shards) == 13


def test_shard_by_keeps_a_key_together_and_cuts_the_rest() -> None:
    keys = {h: ("site-a" if i % 3 == 0 else "") for i, h in enumerate(NAMES)}
    shards = plan_shards(NAMES, 10, keys)
    site_a = [s for s in shards if s.key == "site-a"]
    assert len(site_a) == 1 and set(site_a[0].hosts) == {h for h in NAMES if keys[h]}
    assert all(len(s.hosts) <= 10 for s in shards if not s.key)
    assert sorted(h for s in shards for h in s.hosts) == NAMES


def test_sites_never_mix_and_ask_for_their_resource() -> None:
    sites = {h: ("eu-1" if i < 30 else "us-2" if i < 50 else "") for i, h in enumerate(NAMES)}
    shards = plan_shards(NAMES, 4, sites=sites)
    for shard in shards:
        assert len({sites[h] for h in shard.hosts}) == 1
        assert shard.resources == ({f"site-{shard.site}": 1} if shard.site else {})
    assert Shard(0, ("a",), site="eu-1").resources == {"site-eu-1": 1}


def test_shard_key_prefers_a_group_prefix_then_data() -> None:
    assert shard_key(["web", "site-eu-1"], "x", "site-") == "site-eu-1"
    assert shard_key(["web"], "rack-7", "rack") == "rack-7"
    assert shard_key(["web"], None, "rack") == ""
    assert shard_key(["site-eu-1"], "x", None) == ""


@given(st.lists(st.sampled_from(["", "a", "b", "c"]), max_size=60), st.integers(1, 20))
def test_every_host_in_exactly_one_shard(labels: list[str], target: int) -> None:
    hosts = [f"h{i}" for i in range(len(labels))]
    keys = dict(zip(hosts, labels, strict=True))
    sites = {h: ("eu" if i % 2 else "") for i, h in enumerate(hosts)}
    shards = plan_shards(hosts, target, keys, sites)
    assert sorted(h for s in shards for h in s.hosts) == sorted(hosts)
    assert all(s.hosts for s in shards)
    shard_of = {h: s.index for s in shards for h in s.hosts}
    for host in hosts:  # hosts sharing a key and a site share a shard
        if keys[host]:
            assert {shard_of[h] for h in hosts if keys[h] == keys[host] and sites[h] == sites[host]} == {
                shard_of[host]}


def _inventory(tmp_path: Path, extras: str = "") -> Path:
    inv = tmp_path / "inv"
    inv.mkdir(parents=True)
    (inv / "hosts.yaml").write_text("a:\n  hostname: 198.19.255.254\n")
    (inv / "defaults.yaml").write_text("username: core\n" + extras)
    return inv


def test_scheduler_without_dask_runner_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="need --runner dask"):
        api.execute("audit", _inventory(tmp_path), scheduler="tcp://127.0.0.1:1", out=tmp_path / "run")
    with pytest.raises(ValueError, match="unknown runner"):
        api.execute("audit", _inventory(tmp_path / "x"), runner="spark", out=tmp_path / "run2")


def test_runs_and_explains_without_distributed_installed(tmp_path: Path) -> None:
    """hardnir imports without Dask; --runner dask then says how to install it, in one line, exit 2."""
    inv = _inventory(tmp_path)
    code = ("import sys; sys.modules['distributed'] = None; from hardnir.cli import main; "
            f"sys.exit(main(['audit', '-i', {str(inv)!r}, '--runner', 'dask', '--out', {str(tmp_path / 'r')!r}]))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip() == ("hardnir: error: --runner dask needs Dask distributed, which is not installed: "
                                   "pip install 'hardnir[dask]'")
    assert not (tmp_path / "r").exists()  # refused before the run directory is made


def test_shard_time_limit_follows_the_hosts_timeouts() -> None:
    """One round of 25 hosts on 50 threads: two connections (10 s + grace) and one probe (30 s with the remote kill
    grace, the local backstop, the stall grace and the EOF grace), plus the worker's setup allowance."""
    one = shard_limit("audit", 8, 25, 50, 10, 30)
    assert one == 2 * 10.5 + (30 + 3 + 5 + 1 + 2) + 60
    assert shard_limit("audit", 8, 100, 50, 10, 30) == 2 * (one - 60) + 60  # two rounds
    assert shard_limit("remediate", 8, 25, 50, 10, 30) > shard_limit("rollback", 8, 25, 50, 10, 30) > one
    assert shard_limit("remediate", 8, 25, 50, 10, 30, serial_hosts=4) > shard_limit("remediate", 8, 25, 50, 10, 30)


def test_rows_travel_as_msgpack_data_and_come_back_equal() -> None:
    from datetime import UTC, datetime

    msgpack = pytest.importorskip("msgpack")
    rows = [{"host": "a", "status": "pass", "changed": False, "duration_s": 0.25,
             "started_at": datetime(2026, 12, 2, 3, 4, 5, 678901, tzinfo=UTC), "evidence": '{"k": [1, 2]}'}]
    sent = msgpack.unpackb(msgpack.packb(encode_rows(rows)))
    assert decode_rows(sent) == rows
