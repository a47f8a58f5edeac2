"""core-rkt: `core` is not in the rkt group, and it will not come back (guide: rkt fetch).

From 2016 the rkt group is created by `systemd-sysusers` from `/usr/lib/sysusers.d/rkt.conf`, which also says
`m core rkt`: sysusers re-adds the membership whenever it runs (after every OS update), silently undoing
`gpasswd -d core rkt`. The check fails if `id -nG core` lists rkt, or if an active sysusers line would re-add it.
Fix: `gpasswd -d core rkt` on /etc/group, and a same-named `/etc/sysusers.d/<file>` (which hides the /usr/lib
one) with the vendor content minus the `m core rkt` line. If the membership comes from the read-only group
database (2015 builds) gpasswd cannot remove it: blocked, with the reason. Rollback restores both.
Not applicable when there is no rkt group or no core user.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from hardnir import accounts, filesafe
from hardnir.control import ControlMeta, Finding, Plan, Step, not_applicable, write_if_changed
from hardnir.facts import Facts
from hardnir.params import Param
from hardnir.probe import command_item

META = ControlMeta(
    id="core-rkt",
    title="core is not in the rkt group (and sysusers will not re-add it)",
    section="rkt fetch",
    severity="medium",
    disruption="low",
    platforms=("coreos",),
    rationale="members of rkt can place images in the store that root later runs.",
    remediation="`gpasswd -d core rkt` and an /etc/sysusers.d override without `m core rkt`",
    references=(
        "CoreOS Hardening Guide: Local Services / rkt fetch",
    ),
    version="1",
    order=70,
)

# Why the control does not apply elsewhere (hardnir.platforms): Flatcar removed rkt in 2021 (flatcar/scripts
# 407c665d51, "Drop app-emulation/rkt", Alpha 2857); Fedora CoreOS never shipped it (fedora-coreos-docs migrate-cl).
PLATFORM_NOTES = {
    "flatcar": "rkt is not part of Flatcar (removed in Alpha 2857)",
    "fcos": "rkt is not part of Fedora CoreOS",
}

PARAMS = (Param("user", "user", "core", "the user who must not be in rkt"),)
# The sysusers override is the vendor file minus one line: every line must still be a sysusers entry.
SHAPES = {"/etc/sysusers.d/*.conf": filesafe.LinesShape(r"[ugmr]!?\s+[^\s].*")}
# Vendor files that mention rkt, and every /etc or /run override (an override of the same name hides them).
SYSUSERS_CMD = (  # shell builtins only (`_cat` and `_grep` are the probe's own readers): no process
    "for f in /usr/lib/sysusers.d/*.conf /run/sysusers.d/*.conf /etc/sysusers.d/*.conf; do "
    "[ -f \"$f\" ] || continue; case $f in /usr/*) _grep - '*rkt*' -- \"$f\" >/dev/null || continue;; esac; "
    "printf '## %s\\n' \"$f\"; _cat \"$f\"; done; true"
)


def probe_items(params: Mapping[str, Any]) -> list[tuple[str, str]]:
    user = str(params["user"])
    return [*accounts.user_items(user), command_item("sysusers-rkt", SYSUSERS_CMD, quick=True)]


def _member_line(user: str) -> re.Pattern[str]:
    return re.compile(rf"^m\s+{re.escape(user)}\s+rkt(\s|$)")


def sysusers_files(facts: Facts) -> dict[str, str]:
    files: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in facts.text("cmd:sysusers-rkt").splitlines(keepends=True):
        if line.startswith("## "):
            current = files.setdefault(line[3:].strip(), [])
        elif current is not None:
            current.append(line)
    return {path: "".join(lines) for path, lines in files.items()}


def readding_files(facts: Facts, user: str) -> list[str]:
    """Active sysusers files that contain `m <user> rkt` (an /etc file of the same name hides a /usr/lib one)."""
    files = sysusers_files(facts)
    active = []
    for path, content in files.items():
        name = path.rsplit("/", 1)[-1]
        if path.startswith("/usr/lib/") and ({f"/etc/sysusers.d/{name}", f"/run/sysusers.d/{name}"} & set(files)):
            continue
        if any(_member_line(user).match(line) for line in content.splitlines()):
            active.append(path)
    return active


def check(facts: Facts, params: Mapping[str, Any]) -> Finding:
    user = str(params["user"])
    expected = f"{user} not in rkt, and no sysusers rule re-adds it"
    if not accounts.user_exists(facts, user):
        return not_applicable(expected, f"no user {user}")
    if facts.rc("cmd:getent-rkt") != 0:
        return not_applicable(expected, "no rkt group on this host")
    groups = accounts.effective_groups(facts, user)
    readd = readding_files(facts, user)
    evidence = {"id -nG": groups, "rkt listed in": accounts.listed_in(facts, user, "rkt"), "sysusers": readd}
    problems = []
    if "rkt" in groups:
        problems.append(f"{user} is in rkt")
    if readd:
        problems.append(f"sysusers will re-add it ({', '.join(readd)})")
    observed = "; ".join(problems) or "not a member"
    if problems:
        return Finding("fail", expected, observed, "; ".join(problems), evidence)
    return Finding("pass", expected, observed, f"{user} is not in rkt", evidence)


def plan_fix(facts: Facts, params: Mapping[str, Any]) -> Plan:
    user = str(params["user"])
    if check(facts, params).status != "fail":
        return Plan()
    readonly = accounts.read_only_sources(facts, user, "rkt")
    if readonly:
        return Plan(blocked=f"rkt membership comes from read-only {', '.join(readonly)}; gpasswd cannot remove "
                    "it (update the OS, or restrict /var/lib/rkt with a tmpfiles override)")
    steps: list[Step] = list(accounts.remove_from_etc_group(facts, user, "rkt"))
    files = sysusers_files(facts)
    for path in readding_files(facts, user):
        name = path.rsplit("/", 1)[-1]
        content = "".join(
            line for line in files[path].splitlines(keepends=True) if not _member_line(user).match(line)
        )
        target = path if path.startswith("/etc/") else f"/etc/sysusers.d/{name}"
        steps += write_if_changed(facts, target, content)
    return Plan(steps=tuple(steps), note="effective for new logins")
