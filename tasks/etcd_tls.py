"""etcd-tls: etcd serves clients (and peers) over TLS with client-certificate auth (guide: etcd, fleet, locksmith).

CoreOS configures etcd2 through `ETCD_*` variables, usually from cloud-config's runtime drop-in
`/run/systemd/system/etcd2.service.d/20-cloudinit.conf` (plain http by default). The check reads the running
process's environment (falling back to the unit configuration) and also asks the network: does etcd answer plain
http on a routable address, or https without a client certificate?
Fix: `/etc/systemd/system/etcd2.service.d/40-hardnir-tls.conf` (sorts after 20-cloudinit; `99-` when a foreign
drop-in sorts later) with the inventory's certificate paths (`etcd_tls.ca_file`, `cert_file`, `key_file`),
then restart etcd and wait until it answers https with the client certificate. Members are restarted one host
at a time. Without certificate inputs the fix is blocked. Rollback removes the drop-in and restarts etcd.
The durable fix belongs in the user-data; this control reports that the runtime drop-in stays insecure.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from typing import Any

from hardnir import etcd, filesafe
from hardnir.control import ControlMeta, Finding, Plan, not_applicable, write_if_changed
from hardnir.facts import Facts, is_loopback_host, split_urls, url_host
from hardnir.params import Param
from hardnir.probe import file_item, procenv_item, unit_item

META = ControlMeta(
    id="etcd-tls",
    title="etcd serves clients and peers over TLS with client-certificate auth",
    section="etcd, fleet and locksmith",
    severity="critical",
    disruption="high",
    platforms=("coreos", "flatcar"),
    rationale="etcd holds the cluster's state and fleet's units; plain http lets anyone on the network read "
    "and write it, and through fleet run code as root on every host.",
    remediation="`40-hardnir-tls.conf` drop-in with the inventory's certificate paths; restart one member at a "
    "time and wait for https",
    references=(
        "CoreOS Hardening Guide: Remote non-Listening Services / etcd, fleet, and locksmith",
        "https://coreos.com/etcd/docs/2.2.0/security.html",
    ),
    version="1",
    order=10,
    serial=True,
)

# Why the control does not apply elsewhere (hardnir.platforms): Fedora CoreOS ships no etcd (fedora-coreos-docs
# migrate-cl.adoc); Flatcar still ships etcd-member.service, so the control applies there.
PLATFORM_NOTES = {"fcos": "etcd is not part of Fedora CoreOS (run it as a container if you need it)"}

PARAMS = (
    Param("listen_client_urls", "url_list", "https://0.0.0.0:2379",
          "where etcd serves clients (ETCD_LISTEN_CLIENT_URLS)"),
    Param("advertise_client_urls", "url_list", "https://{address}:2379",
          "the client URLs etcd advertises (ETCD_ADVERTISE_CLIENT_URLS)"),
    Param("wait_seconds", "int", 30, "how long the fix waits for etcd to answer https after the restart",
          minimum=1, maximum=600),
)
SHARED = ("etcd_tls", "etcd_cluster")

BASE = "40-hardnir-tls.conf"
ENVIRONMENT = frozenset({
    "ETCD_CERT_FILE", "ETCD_KEY_FILE", "ETCD_TRUSTED_CA_FILE", "ETCD_CLIENT_CERT_AUTH", "ETCD_LISTEN_CLIENT_URLS",
    "ETCD_ADVERTISE_CLIENT_URLS", "ETCD_LISTEN_PEER_URLS", "ETCD_INITIAL_ADVERTISE_PEER_URLS", "ETCD_PEER_CERT_FILE",
    "ETCD_PEER_KEY_FILE", "ETCD_PEER_TRUSTED_CA_FILE", "ETCD_PEER_CLIENT_CERT_AUTH",
})
SHAPES = {
    f"/etc/systemd/system/{unit}.d/{prefix}-hardnir-tls.conf": filesafe.DropinShape(
        "Service", frozenset({"Environment"}), ENVIRONMENT)
    for unit in etcd.ETCD_UNITS for prefix in ("40", "99")
}
EXPECTED = "https with client-cert auth; no plain http on routable addresses"


def _dropin(unit: str, name: str) -> str:
    return f"/etc/systemd/system/{unit}.d/{name}"


def probe_items(params: Mapping[str, Any]) -> list[tuple[str, str]]:
    items = [etcd.reach_probe()]
    for unit in etcd.ETCD_UNITS:
        items += [unit_item(unit), procenv_item(unit)]
        items += [file_item(_dropin(unit, BASE)), file_item(_dropin(unit, BASE.replace("40-", "99-")))]
    for key in etcd.TLS_KEYS:  # existence and ownership only: a private key's content never leaves the host
        path = etcd.tls_value(params, key)
        if path:
            items.append(file_item(path, content=False))
    return items


def _problems(env: Mapping[str, str]) -> list[str]:
    problems = []
    client = env.get("ETCD_LISTEN_CLIENT_URLS", "http://localhost:2379,http://localhost:4001")
    plain = etcd.http_routable(client)
    if plain:
        problems.append(f"plain http client listener on {', '.join(plain)}")
    for var in ("ETCD_LISTEN_PEER_URLS", "ETCD_INITIAL_ADVERTISE_PEER_URLS"):
        peer = etcd.http_routable(env.get(var, ""))
        if peer:
            problems.append(f"plain http peer URL {', '.join(peer)}")
    client_auth = (env.get("ETCD_CLIENT_CERT_AUTH", "").lower() == "true" and env.get("ETCD_TRUSTED_CA_FILE")) or (
        env.get("ETCD_CA_FILE")
    )
    if any(u.startswith("https://") for u in split_urls(client)) and not client_auth:
        problems.append("https without client-certificate auth")
    peer_urls = env.get("ETCD_LISTEN_PEER_URLS", "")
    peer_auth = (
        env.get("ETCD_PEER_CLIENT_CERT_AUTH", "").lower() == "true" and env.get("ETCD_PEER_TRUSTED_CA_FILE")
    ) or env.get("ETCD_PEER_CA_FILE")
    routable_https_peer = [
        u for u in split_urls(peer_urls) if u.startswith("https://") and not is_loopback_host(url_host(u))
    ]
    if routable_https_peer and not peer_auth:
        problems.append("peer https without peer client-certificate auth")
    for prefix in ("ETCD_", "ETCD_PEER_"):
        if env.get(f"{prefix}CERT_FILE") and not env.get(f"{prefix}KEY_FILE"):
            problems.append(f"{prefix}CERT_FILE without {prefix}KEY_FILE")
    return problems


def check(facts: Facts, params: Mapping[str, Any]) -> Finding:
    unit = etcd.active_etcd_unit(facts)
    if unit is None:
        return not_applicable(EXPECTED, "no etcd unit is installed and enabled or running")
    env, source = etcd.effective_env(facts, unit)
    env_problems = _problems(env)
    problems = list(env_problems)
    network = etcd.reachability(facts)
    for scheme, where, answered, _ in network:
        host = where.rpartition(":")[0]
        if answered and scheme == "http" and not is_loopback_host(host):
            problems.append(f"answered plain http on {where}")
        if answered and scheme == "https-nocert":
            problems.append(f"answered https without a client certificate on {where}")
    loopback_http = [w for s, w, a, _ in network if a and s == "http" and is_loopback_host(w.rpartition(":")[0])]
    configured = etcd.configured_env(facts, unit)
    pending = source == "running process" and _problems(configured) != env_problems
    evidence = {
        "unit": unit,
        "source": source,
        "env": {k: v for k, v in sorted(env.items()) if k.startswith("ETCD_")},
        "drop_ins": facts.unit(unit).drop_ins,
        "network": [f"{s} {w} {'answered' if a else 'refused'}" for s, w, a, _ in network],
    }
    observed = f"client URLs {env.get('ETCD_LISTEN_CLIENT_URLS', '(default http://localhost:2379)')}"
    cloudinit = [p for p in facts.unit(unit).drop_ins if p.startswith("/run/") and "cloudinit" in p]
    notes = []
    if loopback_http:
        notes.append(f"warning: plain http on loopback {', '.join(loopback_http)}")
    if pending:
        notes.append("configuration changed but etcd not restarted")
    if cloudinit and not problems:
        notes.append("user-data still generates an insecure runtime drop-in")
    suffix = ("; " + "; ".join(notes)) if notes else ""
    if problems:
        return Finding("fail", EXPECTED, observed, "; ".join(problems) + suffix, evidence)
    return Finding("pass", EXPECTED, observed, f"{unit} serves TLS with client-cert auth{suffix}", evidence)


def serial_key(facts: Facts, params: Mapping[str, Any]) -> str:
    """Which etcd cluster this member belongs to, so members of one cluster restart one at a time.

    The inventory's `etcd_cluster` wins; a standalone member (every peer URL on loopback, no discovery or proxy)
    waits for nobody; otherwise the cluster is named by its ETCD_INITIAL_CLUSTER peers (unknown: one shared key).
    """
    if params.get("etcd_cluster"):
        return f"inventory:{params['etcd_cluster']}"
    if etcd.standalone_member(facts):
        return f"single:{facts.host}"
    unit = etcd.active_etcd_unit(facts)
    env = etcd.effective_env(facts, unit)[0] if unit else {}
    peers = sorted(m.partition("=")[2] for m in split_urls(env.get("ETCD_INITIAL_CLUSTER", "")) if "=" in m)
    return f"cluster:{','.join(peers)}" if peers else "unknown"


def plan_fix(facts: Facts, params: Mapping[str, Any]) -> Plan:
    if check(facts, params).status != "fail":
        return Plan()
    unit = etcd.active_etcd_unit(facts)
    if unit is None:
        return Plan()
    missing = etcd.missing_tls_inputs(params)
    if missing:
        return Plan(blocked=f"TLS inputs missing in the inventory: {', '.join(missing)}")
    absent = [
        etcd.tls_value(params, k) for k in etcd.TLS_KEYS if facts.file(etcd.tls_value(params, k)).kind != "file"
    ]
    if absent:
        return Plan(blocked=f"certificate files not found on the host: {', '.join(absent)}")
    ca, cert, key = (etcd.tls_value(params, k) for k in etcd.TLS_KEYS)
    for name in ("listen_client_urls", "advertise_client_urls"):
        reason = etcd.unresolved(str(params[name]), f"etcd_tls.{name}")
        if reason:
            return Plan(blocked=reason)
    values = {
        "ETCD_CERT_FILE": cert,
        "ETCD_KEY_FILE": key,
        "ETCD_TRUSTED_CA_FILE": ca,
        "ETCD_CLIENT_CERT_AUTH": "true",
        "ETCD_LISTEN_CLIENT_URLS": str(params["listen_client_urls"]),
        "ETCD_ADVERTISE_CLIENT_URLS": str(params["advertise_client_urls"]),
    }
    env = etcd.configured_env(facts, unit)
    for var in ("ETCD_LISTEN_PEER_URLS", "ETCD_INITIAL_ADVERTISE_PEER_URLS"):
        if etcd.http_routable(env.get(var, "")):
            values[var] = env[var].replace("http://", "https://")
            values.update(
                {
                    "ETCD_PEER_CERT_FILE": cert,
                    "ETCD_PEER_KEY_FILE": key,
                    "ETCD_PEER_TRUSTED_CA_FILE": ca,
                    "ETCD_PEER_CLIENT_CERT_AUTH": "true",
                }
            )
    path = _dropin(unit, etcd.dropin_name(facts, unit, BASE))
    steps = write_if_changed(facts, path, etcd.env_dropin(values))
    restart = bool(steps) or check(facts, params).status == "fail"
    wait = int(params["wait_seconds"]) * 2
    health = etcd.https_precheck("https://127.0.0.1:2379", params)
    post = (
        "systemctl daemon-reload",
        f"systemctl restart {shlex.quote(unit)}",
        f"i=0; until {health} >/dev/null 2>&1; do i=$((i+1)); [ $i -ge {wait} ] && exit 1; sleep 0.5; done",
    )
    return Plan(
        steps=tuple(steps),
        post=post if restart else (),
        rollback_post=("systemctl daemon-reload", f"systemctl restart {shlex.quote(unit)}"),
    )
