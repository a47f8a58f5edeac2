"""fleet-etcd-tls: fleet talks to etcd over https with a CA, a client certificate and key (guide: etcd, fleet,
locksmith; cloud-config `coreos.fleet.etcd_*`).

Effective settings: `FLEET_ETCD_*` in the environment of the running fleetd (or the unit, including the
cloudinit runtime drop-in) override `/etc/fleet/fleet.conf`; unset means `http://127.0.0.1:2379,...:4001`.
Fix: `/etc/systemd/system/fleet.service.d/40-hardnir-etcd-tls.conf` with `FLEET_ETCD_SERVERS` (default
`https://{address}:2379`) and the inventory's CA/client pair, after a precheck that etcd really answers https
with that certificate (so fleet is never pointed at a dead endpoint), then restart fleet.service if it runs.
Rollback removes the drop-in and restarts fleet.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from typing import Any

from hardnir import etcd, filesafe
from hardnir.control import ControlMeta, Finding, Plan, not_applicable, write_if_changed
from hardnir.facts import Facts, parse_env_file, split_urls
from hardnir.params import Param
from hardnir.probe import file_item, procenv_item, unit_item

META = ControlMeta(
    id="fleet-etcd-tls",
    title="fleet talks to etcd over https with CA, certificate and key",
    section="etcd, fleet and locksmith",
    severity="high",
    disruption="medium",
    platforms=("coreos",),
    rationale="fleet reads and writes the cluster's units in etcd; over plain http anyone on the path can "
    "read or forge them.",
    remediation="drop-in pointing fleet at https etcd with CA, certificate and key, after checking that etcd "
    "answers https with that certificate",
    references=(
        "CoreOS Hardening Guide: Remote non-Listening Services / etcd, fleet, and locksmith",
        "https://coreos.com/os/docs/latest/cloud-config.html#fleet",
    ),
    version="1",
    order=20,
)

# Why the control does not apply elsewhere (hardnir.platforms): fleet left Container Linux in 2018
# (coreos/coreos-overlay 52c85ab8b) and was never part of Flatcar or Fedora CoreOS (fedora-coreos-docs migrate-cl).
PLATFORM_NOTES = {
    "flatcar": "fleet is not part of Flatcar (it was dropped from Container Linux before Flatcar forked)",
    "fcos": "fleet is not part of Fedora CoreOS",
}

PARAMS = (Param("etcd_servers", "url_list", "https://{address}:2379", "the etcd endpoints fleet uses"),)
SHARED = ("etcd_tls",)
UNIT = "fleet.service"
CONF = "/etc/fleet/fleet.conf"
DROPIN = "/etc/systemd/system/fleet.service.d/40-hardnir-etcd-tls.conf"
SHAPES = {DROPIN: filesafe.DropinShape("Service", frozenset({"Environment"}), frozenset(
    {"FLEET_ETCD_SERVERS", "FLEET_ETCD_CAFILE", "FLEET_ETCD_CERTFILE", "FLEET_ETCD_KEYFILE"}))}
EXPECTED = "https etcd servers with CA, cert and key"
DEFAULT_SERVERS = "http://127.0.0.1:2379,http://127.0.0.1:4001"


def probe_items(params: Mapping[str, Any]) -> list[tuple[str, str]]:
    return [unit_item(UNIT), procenv_item(UNIT), file_item(CONF), file_item(DROPIN)]


def settings(facts: Facts) -> tuple[dict[str, str], str]:
    """servers, cafile, certfile, keyfile as fleet sees them, and the source."""
    conf = parse_env_file(facts.file(CONF).content or "")
    values = {
        "servers": conf.get("etcd_servers", ""),
        "ca": conf.get("etcd_cafile", ""),
        "cert": conf.get("etcd_certfile", ""),
        "key": conf.get("etcd_keyfile", ""),
    }
    env, source = etcd.effective_env(facts, UNIT)
    for name, var in (("servers", "SERVERS"), ("ca", "CAFILE"), ("cert", "CERTFILE"), ("key", "KEYFILE")):
        if env.get(f"FLEET_ETCD_{var}"):
            values[name] = env[f"FLEET_ETCD_{var}"]
    values["servers"] = values["servers"] or DEFAULT_SERVERS
    return values, source


def check(facts: Facts, params: Mapping[str, Any]) -> Finding:
    unit = facts.unit(UNIT)
    if not unit.exists or unit.masked:
        return not_applicable(EXPECTED, "fleet is not installed")
    if not unit.active and unit.is_enabled not in ("enabled", "static"):
        return not_applicable(EXPECTED, "fleet is installed but neither running nor enabled")
    values, source = settings(facts)
    problems = etcd.client_tls_problems(values["servers"], values["ca"], values["cert"], values["key"], "fleet")
    evidence = {"source": source, **values, "drop_ins": unit.drop_ins}
    observed = f"{values['servers']} (CA {values['ca'] or 'none'})"
    if problems:
        return Finding("fail", EXPECTED, observed, "; ".join(problems), evidence)
    return Finding("pass", EXPECTED, observed, f"fleet uses https with a client certificate ({source})", evidence)


def plan_fix(facts: Facts, params: Mapping[str, Any]) -> Plan:
    if check(facts, params).status != "fail":
        return Plan()
    missing = etcd.missing_tls_inputs(params, ("ca_file",))
    cert, key = etcd.client_pair(params)
    if not cert:
        missing.append("etcd_tls.client_cert_file")
    if not key:
        missing.append("etcd_tls.client_key_file")
    if missing:
        return Plan(blocked=f"TLS inputs missing in the inventory: {', '.join(missing)}")
    servers = str(params["etcd_servers"])
    reason = etcd.unresolved(servers, "fleet_etcd_tls.etcd_servers")
    if reason:
        return Plan(blocked=reason)
    values = {
        "FLEET_ETCD_SERVERS": servers,
        "FLEET_ETCD_CAFILE": etcd.tls_value(params, "ca_file"),
        "FLEET_ETCD_CERTFILE": cert,
        "FLEET_ETCD_KEYFILE": key,
    }
    steps = write_if_changed(facts, DROPIN, etcd.env_dropin(values))
    restart = ("systemctl daemon-reload", f"systemctl try-restart {shlex.quote(UNIT)}")
    return Plan(
        steps=tuple(steps),
        post=restart,
        rollback_post=restart,
        precheck=(etcd.https_precheck(split_urls(servers)[0], params),),
        note="fleet restarts; it re-reads its units from etcd",
    )
