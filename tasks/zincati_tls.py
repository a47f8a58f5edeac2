"""zincati-tls: Zincati takes its reboot lock over https (guide: etcd, fleet and locksmith; Fedora CoreOS's
successor to locksmith's etcd lock).

Fedora CoreOS has no locksmith: its update agent Zincati finalizes updates by a strategy, and with
`strategy = "fleet_lock"` it asks a FleetLock server (`[updates.fleet_lock] base_url`) for a reboot slot before
rebooting (coreos/zincati `docs/usage/updates-strategy.md`). Over plain http anyone on the path can hand out or
withhold the lock, i.e. force or block the reboots of a cluster: the same risk the guide names for locksmith and
etcd. The check reads the configuration Zincati reads when it starts: the `*.toml` fragments of
`/usr/lib/zincati/config.d`, `/etc/zincati/config.d` and `/run/zincati/config.d`, merged by file name in
lexical order, a later directory hiding a same-named file, a link to /dev/null hiding it altogether
(`docs/usage/configuration.md`). Not applicable when Zincati is absent, masked or off, or the strategy is not
`fleet_lock` (`immediate`, the default, and `periodic` use no lock server).
Fix: `/etc/zincati/config.d/90-hardnir-fleet-lock-tls.toml` setting `base_url` to `zincati_tls.base_url`
(default: the configured URL with `https://`), then `systemctl try-restart zincati.service`. Blocked when a
fragment sorting after it sets `base_url` (it would win). Rollback removes the file and restarts Zincati.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from hardnir import filesafe
from hardnir.control import ControlMeta, Finding, Plan, not_applicable, write_if_changed
from hardnir.facts import Facts
from hardnir.params import Param
from hardnir.probe import command_item, file_item, unit_item

META = ControlMeta(
    id="zincati-tls",
    title="Zincati takes its FleetLock reboot lock over https",
    section="etcd, fleet and locksmith",
    severity="medium",
    disruption="low",
    platforms=("fcos",),
    rationale="Zincati's FleetLock server decides when each node may reboot; over plain http anyone on the path "
    "can grant or withhold the lock and so force or block the cluster's reboots, as with locksmith over http.",
    remediation="a `90-hardnir-fleet-lock-tls.toml` fragment in /etc/zincati/config.d with an https `base_url`, "
    "then Zincati is restarted",
    references=(
        "CoreOS Hardening Guide: Remote non-Listening Services / etcd, fleet, and locksmith",
        "https://coreos.github.io/zincati/usage/updates-strategy/",
        "https://coreos.github.io/zincati/usage/configuration/",
    ),
    version="1",
    order=35,
)

# Why the control does not apply elsewhere (hardnir.platforms): Zincati is Fedora CoreOS's update agent;
# Container Linux and Flatcar coordinate reboots with locksmith (`locksmith-etcd-tls`).
PLATFORM_NOTES = {
    "coreos": "Zincati is not part of Container Linux (locksmith reboots it: see locksmith-etcd-tls)",
    "flatcar": "Zincati is not part of Flatcar (locksmith reboots it: see locksmith-etcd-tls)",
}

PARAMS = (
    Param("base_url", "https_url", "", "the https FleetLock URL to set; empty: the configured base_url with "
          "its scheme changed to https (the lock server must serve https there)"),
)
UNIT = "zincati.service"
CONFIG_DIRS = ("/usr/lib/zincati/config.d", "/etc/zincati/config.d", "/run/zincati/config.d")
FRAGMENT = "90-hardnir-fleet-lock-tls.toml"
PATH = f"/etc/zincati/config.d/{FRAGMENT}"
SHAPES = {PATH: filesafe.LinesShape(r'\[updates\.fleet_lock\]|base_url = "https://[A-Za-z0-9.:\[\]/_~+-]+"')}
EXPECTED = "fleet_lock base_url over https"

# Every *.toml of the three directories, in directory order: "## <path>" then the content, or
# "## <path> -> /dev/null" for a masking link.
_LIST_FRAGMENTS = (
    f"for d in {' '.join(CONFIG_DIRS)}; do for f in \"$d\"/*.toml; do "
    "if [ -L \"$f\" ] && [ \"$(readlink \"$f\")\" = /dev/null ]; then printf '## %s -> /dev/null\\n' \"$f\"; "
    "elif [ -f \"$f\" ]; then printf '## %s\\n' \"$f\"; _cat \"$f\"; fi; done; done; true"
)


def probe_items(params: Mapping[str, Any]) -> list[tuple[str, str]]:
    return [unit_item(UNIT), command_item("zincati-config", _LIST_FRAGMENTS, quick=True), file_item(PATH)]


def fragments(facts: Facts) -> dict[str, tuple[str, str | None]]:
    """The fragments Zincati reads, by file name in lexical order: (path, content; None for a /dev/null link).
    A later directory's file hides a same-named one."""
    found: dict[str, tuple[str, str | None]] = {}
    path = ""
    lines: list[str] = []

    def flush() -> None:
        if path:
            masked = path.endswith(" -> /dev/null")
            real = path.removesuffix(" -> /dev/null")
            found[real.rpartition("/")[2]] = (real, None if masked else "".join(lines))

    for line in facts.text("cmd:zincati-config").splitlines(keepends=True):
        if line.startswith("## /"):
            flush()
            path, lines = line[3:].rstrip("\n"), []
        else:
            lines.append(line)
    flush()
    return dict(sorted(found.items()))


def _merge(into: dict[str, Any], new: Mapping[str, Any]) -> None:
    for key, value in new.items():
        if isinstance(value, Mapping) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = dict(value) if isinstance(value, Mapping) else value


def effective(facts: Facts) -> tuple[dict[str, Any], dict[str, str], str]:
    """Merged configuration, which file set each of strategy/base_url, and a parse error ("" if none)."""
    merged: dict[str, Any] = {}
    origin: dict[str, str] = {}
    for path, content in fragments(facts).values():
        if content is None:
            continue
        try:
            data = tomllib.loads(content)
        except tomllib.TOMLDecodeError as exc:
            return merged, origin, f"{path} is not valid TOML ({exc}); Zincati would not start"
        updates = data.get("updates")
        if isinstance(updates, Mapping):
            if "strategy" in updates:
                origin["strategy"] = path
            lock = updates.get("fleet_lock")
            if isinstance(lock, Mapping) and "base_url" in lock:
                origin["base_url"] = path
        _merge(merged, data)
    return merged, origin, ""


def lock_settings(merged: Mapping[str, Any]) -> tuple[str, str]:
    updates = merged.get("updates")
    updates = updates if isinstance(updates, Mapping) else {}
    lock = updates.get("fleet_lock")
    lock = lock if isinstance(lock, Mapping) else {}
    return str(updates.get("strategy", "immediate")), str(lock.get("base_url", ""))


def check(facts: Facts, params: Mapping[str, Any]) -> Finding:
    unit = facts.unit(UNIT)
    if not unit.probed:
        return Finding("error", EXPECTED, "unknown", f"{UNIT} was not probed")
    if not unit.exists or unit.masked:
        return not_applicable(EXPECTED, "Zincati is not installed" if not unit.exists else "zincati.service is masked")
    if not unit.active and unit.is_enabled not in ("enabled", "static"):
        return not_applicable(EXPECTED, "Zincati is installed but neither running nor enabled")
    merged, origin, error = effective(facts)
    strategy, base_url = lock_settings(merged)
    evidence = {"strategy": strategy, "base_url": base_url, "set_in": origin,
                "fragments": [p for p, _ in fragments(facts).values()], "zincati.service": unit.active_state}
    if error:
        return Finding("error", EXPECTED, "unreadable configuration", error, evidence)
    if strategy != "fleet_lock":
        return not_applicable(EXPECTED, f"update strategy {strategy}: Zincati uses no lock server", evidence)
    where = f" (set in {origin['base_url']})" if "base_url" in origin else ""
    if not base_url:
        return Finding("fail", EXPECTED, "no base_url", "strategy fleet_lock without a base_url: Zincati refuses "
                       "to start", evidence)
    scheme = urlsplit(base_url).scheme
    if scheme != "https":
        return Finding("fail", EXPECTED, base_url, f"FleetLock over {scheme or 'an unknown scheme'}: anyone on the "
                       f"path can grant or withhold reboots{where}", evidence)
    return Finding("pass", EXPECTED, base_url, f"Zincati takes its reboot lock over https{where}", evidence)


def target_url(current: str, params: Mapping[str, Any]) -> str:
    wanted = str(params.get("base_url") or "")
    if wanted:
        return wanted
    parts = urlsplit(current)
    return urlunsplit(("https", parts.netloc, parts.path or "/", "", "")) if parts.netloc else ""


def plan_fix(facts: Facts, params: Mapping[str, Any]) -> Plan:
    finding = check(facts, params)
    if finding.status != "fail":
        return Plan()
    _, origin, _ = effective(facts)
    later = origin.get("base_url", "").rpartition("/")[2]
    if later > FRAGMENT:
        return Plan(blocked=f"{origin['base_url']} sorts after {FRAGMENT} and sets base_url: change it there")
    url = target_url(lock_settings(effective(facts)[0])[1], params)
    if not url:
        return Plan(blocked="zincati_tls.base_url must name the https FleetLock URL (none is configured to "
                    "upgrade)")
    content = f'[updates.fleet_lock]\nbase_url = "{url}"\n'
    restart = (f"systemctl try-restart {UNIT}",)
    return Plan(steps=tuple(write_if_changed(facts, PATH, content)), post=restart, rollback_post=restart,
                note="the lock server must answer https at that URL, or Zincati cannot take the reboot lock")
