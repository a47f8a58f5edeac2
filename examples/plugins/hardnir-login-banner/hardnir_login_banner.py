"""login-banner: /etc/issue.net tells users that access is monitored (a site policy, as a hardnir control)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hardnir.control import ControlMeta, Finding, Plan, write_if_changed
from hardnir.facts import Facts
from hardnir.filesafe import LinesShape
from hardnir.probe import file_item

META = ControlMeta(id="login-banner", title="/etc/issue.net carries the login banner", section="Site policy",
                   severity="low", disruption="low", platforms=("coreos",), rationale="warn before login")
PARAMS = ()
SHARED = ()
SHAPES = {"/etc/issue.net": LinesShape(r".+")}
PATH, BANNER = "/etc/issue.net", "Authorised access only. Activity is monitored.\n"


def probe_items(params: Mapping[str, Any]) -> list[tuple[str, str]]:
    return [file_item(PATH)]


def check(facts: Facts, params: Mapping[str, Any]) -> Finding:
    observed = facts.file(PATH).content or "absent"
    status = "pass" if observed == BANNER else "fail"
    return Finding(status, BANNER.strip(), observed.strip()[:80], f"{PATH}: login banner check: {status}")


def plan_fix(facts: Facts, params: Mapping[str, Any]) -> Plan:
    return Plan(steps=tuple(write_if_changed(facts, PATH, BANNER)))
