"""The recorded facts (tests/fixtures/facts/*.yaml) are today's probe's, and each says where it came from.

When the probe gathers a new item, these fail until the fixtures are recorded again on the lab:
`sudo .venv/bin/python tests/fixtures/facts/record.py` (see its docstring).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

from hardnir import probe
from hardnir.control import catalogue

FACTS = Path(__file__).resolve().parents[1] / "fixtures" / "facts"
sys.path.insert(0, str(FACTS))
from record import LAB_HOSTS, LAB_SEED, pick_hosts  # noqa: E402

FIXTURES = sorted(FACTS.glob("*.yaml"))


@pytest.mark.parametrize("path", FIXTURES, ids=[p.stem for p in FIXTURES])
def test_the_fixture_holds_every_item_the_probe_gathers(path: Path) -> None:
    """All controls with their default parameters: the items every lab host answers."""
    items = [i for c in catalogue().values() for i in c.probe_items(c.params({}, "198.19.1.1"))]
    recorded = yaml.safe_load(path.read_text())
    assert set(probe.build(items).plan.names) <= set(recorded)
    assert all(set(item) == {"rc", "text"} for item in recorded.values())


def test_each_fixture_comes_from_a_host_of_the_recording_lab() -> None:
    picked = pick_hosts(FIXTURES)
    assert len(FIXTURES) == 8 and all(1 <= index <= LAB_HOSTS for index in picked.values())
    for path, index in picked.items():
        head = path.read_text().split("\n", 1)[0]
        assert f"lab host lab-{index:02d} (mixed lab of {LAB_HOSTS} hosts, seed {LAB_SEED};" in head, path.name
