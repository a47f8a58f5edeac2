"""Every control's check on recorded probe facts: the cases live in tests/fixtures/cases/<control>.yaml.

Base facts are probe outputs recorded from lab hosts (`hardnir facts`) in tests/fixtures/facts/. A case names a
base, then patches items (text substitutions), sets or drops items, and states the expected status and the
substrings expected in `expected`, `observed` and `message`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from hardnir.control import ControlMeta, catalogue
from hardnir.facts import Facts
from hardnir.probe import Item

ROOT = Path(__file__).resolve().parent.parent / "fixtures"
README = Path(__file__).resolve().parents[2] / "README.md"


def load_base(name: str) -> dict[str, Item]:
    data = yaml.safe_load((ROOT / "facts" / f"{name}.yaml").read_text())
    return {k: Item(int(v["rc"]), str(v["text"])) for k, v in data.items()}


def build_facts(case: dict[str, Any]) -> Facts:
    items = load_base(case["base"])
    for name in case.get("drop", []):
        items.pop(name, None)
    for name, subs in (case.get("patch") or {}).items():
        item = items[name]
        text = item.text
        for old, new in subs:
            assert old in text, f"{case['name']}: {old!r} not in {name}"
            text = text.replace(old, new)
        items[name] = Item(item.rc, text)
    for name, value in (case.get("set") or {}).items():
        items[name] = Item(int(value.get("rc", 0)), str(value.get("text", "")))
    return Facts(items, host="fixture", address=case.get("address", "198.19.1.1"))


def all_cases() -> list[tuple[str, dict[str, Any]]]:
    out = []
    for control in catalogue():
        path = ROOT / "cases" / f"{control}.yaml"
        if path.exists():
            out += [(control, case) for case in yaml.safe_load(path.read_text())]
    return out


@pytest.mark.parametrize(("control_id", "case"), all_cases(), ids=[f"{c}:{k['name']}" for c, k in all_cases()])
def test_case(control_id: str, case: dict[str, Any]) -> None:
    control = catalogue()[control_id]
    facts = build_facts(case)
    params = control.params(case.get("data", {}), case.get("address", "198.19.1.1"))
    finding = control.check(facts, params)
    expect = case["expect"]
    assert finding.status == expect["status"], finding
    for key in ("expected", "observed", "message"):
        if key in expect:
            assert expect[key] in getattr(finding, key), (key, finding)
    if "fix" in case:
        plan = control.plan_fix(facts, params)
        want = case["fix"]
        if want.get("blocked"):
            assert want["blocked"] in plan.blocked, plan
        if "empty" in want:
            assert plan.empty is want["empty"], plan
        for text in want.get("contains", []):
            assert text in plan.describe(), plan.describe()
        if "lockout" in want:
            assert bool(plan.lockout) is want["lockout"], plan


@pytest.mark.parametrize("control_id", list(catalogue()))
def test_catalogue_entry_is_complete(control_id: str) -> None:
    control = catalogue()[control_id]
    meta = control.meta
    assert isinstance(meta, ControlMeta)
    for field in ("id", "title", "section", "severity", "disruption", "rationale", "remediation", "references",
                  "version"):
        assert getattr(meta, field), f"{control_id}: META.{field} is empty"
    assert meta.platforms
    section = meta.section.split(":")[0].replace(",", "")
    assert any(section in ref.replace(",", "") for ref in meta.references), f"{control_id}: no guide reference"
    assert (control.module.__doc__ or "").strip(), f"{control_id}: module docstring (the control's doc) missing"
    assert f"`{control_id}`" in README.read_text(), f"{control_id}: not documented in README"
    cases = [case for cid, case in all_cases() if cid == control_id]
    assert len(cases) >= 5, f"{control_id}: needs at least 5 fixture cases, has {len(cases)}"
    statuses = {case["expect"]["status"] for case in cases}
    assert {"pass", "fail", "not_applicable"} <= statuses, f"{control_id}: cases cover only {statuses}"


def test_etcd_members_of_one_cluster_share_a_restart_lock() -> None:
    control = catalogue()["etcd-tls"]
    lone = build_facts({"name": "lone", "base": "coreos-vanilla"})
    assert control.serial_key(lone, control.params({}, "198.19.1.1")) == "single:fixture"
    shared = build_facts({"name": "shared", "base": "coreos-vanilla", "patch": {
        "procenv:etcd2.service": [["ETCD_INITIAL_CLUSTER=default=http://127.0.0.1:2380",
                                   "ETCD_INITIAL_CLUSTER=a=https://10.0.0.1:2380,b=https://10.0.0.2:2380"]]}})
    key = control.serial_key(shared, control.params({}, "10.0.0.1"))
    assert key == "cluster:https://10.0.0.1:2380,https://10.0.0.2:2380"
    assert control.serial_key(lone, control.params({"etcd_cluster": "prod"}, "x")) == "inventory:prod"
