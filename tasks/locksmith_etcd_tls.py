"""locksmith-etcd-tls: locksmithd talks to etcd over https with a CA, a client certificate and key (guide:
etcd, fleet, locksmith; cloud-config `coreos.locksmith.*`).

locksmithd reads `LOCKSMITHD_*` from its environment, and its unit loads `/usr/share/coreos/update.conf` and
`/etc/coreos/update.conf` (Flatcar: `.../flatcar/update.conf`) with EnvironmentFile=, which beats any drop-in.
Not applicable when REBOOT_STRATEGY is `reboot` or `off` (etcd is not used).
Fix: `/etc/systemd/system/locksmithd.service.d/40-hardnir-etcd-tls.conf` with `LOCKSMITHD_ENDPOINT` and the
inventory's CA/client pair; conflicting `LOCKSMITHD_ENDPOINT`/`LOCKSMITHD_ETCD_*` lines are removed from the
writable update.conf (only those keys: update-engine reads the same file; the file is backed up); precheck that
etcd answers https with that certificate; restart locksmithd if it runs. Rollback restores both files.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from typing import Any

from hardnir import etcd, filesafe
from hardnir.control import ControlMeta, Finding, Plan, Step, not_applicable, write_if_changed
from hardnir.facts import Facts, split_urls
from hardnir.params import Param
from hardnir.probe import envfiles_item, file_item, procenv_item, unit_item

META = ControlMeta(
    id="locksmith-etcd-tls",
    title="locksmithd talks to etcd over https with CA, certificate and key",
    section="etcd, fleet and locksmith",
    severity="medium",
    disruption="low",
    platforms=("coreos", "flatcar"),
    rationale="locksmith takes the cluster's reboot lock in etcd; over plain http anyone can hold or steal "
    "it and block or force reboots.",
    remediation="drop-in pointing locksmithd at https etcd with CA, certificate and key; the overriding keys are "
    "removed from update.conf",
    references=(
        "CoreOS Hardening Guide: Remote non-Listening Services / etcd, fleet, and locksmith",
        "https://coreos.com/os/docs/latest/cloud-config.html#locksmith",
    ),
    version="1",
    order=30,
)

# Why the control does not apply elsewhere (hardnir.platforms): Fedora CoreOS has no locksmith; Zincati
# coordinates its reboots (coreos/zincati docs/usage/updates-strategy.md), checked by `zincati-tls`.
PLATFORM_NOTES = {"fcos": "locksmith is not part of Fedora CoreOS (Zincati reboots it: see zincati-tls)"}

PARAMS = (Param("endpoint", "url_list", "https://{address}:2379", "the etcd endpoints locksmithd uses"),)
SHARED = ("etcd_tls",)
UNIT = "locksmithd.service"
DROPIN = "/etc/systemd/system/locksmithd.service.d/40-hardnir-etcd-tls.conf"
UPDATE_CONFS = ("/etc/coreos/update.conf", "/etc/flatcar/update.conf")
OVERRIDDEN = ("LOCKSMITHD_ENDPOINT", "LOCKSMITHD_ETCD_CAFILE", "LOCKSMITHD_ETCD_CERTFILE", "LOCKSMITHD_ETCD_KEYFILE")
SHAPES = {
    DROPIN: filesafe.DropinShape("Service", frozenset({"Environment"}), frozenset(OVERRIDDEN)),
    # update.conf minus the overriding keys: still KEY=value lines only
    **{path: filesafe.LinesShape(r"\s*[A-Za-z_][A-Za-z0-9_]*\s*=.*") for path in UPDATE_CONFS},
}
EXPECTED = "https endpoint with CA, cert and key"
DEFAULT_ENDPOINT = "http://127.0.0.1:2379,http://127.0.0.1:4001"


def probe_items(params: Mapping[str, Any]) -> list[tuple[str, str]]:
    return [unit_item(UNIT), procenv_item(UNIT), envfiles_item(UNIT), file_item(DROPIN)] + [
        file_item(p) for p in UPDATE_CONFS
    ]


def check(facts: Facts, params: Mapping[str, Any]) -> Finding:
    unit = facts.unit(UNIT)
    if not unit.exists or unit.masked:
        return not_applicable(EXPECTED, "locksmithd is not installed")
    if not unit.active and unit.is_enabled not in ("enabled", "static"):
        return not_applicable(EXPECTED, "locksmithd is installed but neither running nor enabled")
    env, source = etcd.effective_env(facts, UNIT)
    strategy = env.get("REBOOT_STRATEGY", "")
    if strategy in ("reboot", "off"):
        return not_applicable(EXPECTED, f"REBOOT_STRATEGY={strategy}: locksmith does not use etcd")
    endpoint = env.get("LOCKSMITHD_ENDPOINT") or DEFAULT_ENDPOINT
    ca = env.get("LOCKSMITHD_ETCD_CAFILE", "")
    cert = env.get("LOCKSMITHD_ETCD_CERTFILE", "")
    key = env.get("LOCKSMITHD_ETCD_KEYFILE", "")
    problems = etcd.client_tls_problems(endpoint, ca, cert, key, "locksmithd")
    overriding = [
        f"{path}: {k}" for path, vals in facts.env_files(UNIT).items() for k in vals if k in OVERRIDDEN
    ]
    evidence = {
        "source": source,
        "endpoint": endpoint,
        "ca": ca,
        "cert": cert,
        "key": key,
        "strategy": strategy or "(default)",
        "update_conf_overrides": overriding,
    }
    observed = f"{endpoint} (CA {ca or 'none'})"
    if problems:
        return Finding("fail", EXPECTED, observed, "; ".join(problems), evidence)
    return Finding("pass", EXPECTED, observed, f"locksmithd uses https with a client certificate ({source})",
                   evidence)


def _strip_keys(text: str) -> str:
    keep = [line for line in text.splitlines(keepends=True) if line.split("=", 1)[0].strip() not in OVERRIDDEN]
    return "".join(keep)


def plan_fix(facts: Facts, params: Mapping[str, Any]) -> Plan:
    if check(facts, params).status != "fail":
        return Plan()
    cert, key = etcd.client_pair(params)
    missing = etcd.missing_tls_inputs(params, ("ca_file",))
    missing += [n for n, v in (("etcd_tls.client_cert_file", cert), ("etcd_tls.client_key_file", key)) if not v]
    if missing:
        return Plan(blocked=f"TLS inputs missing in the inventory: {', '.join(missing)}")
    endpoint = str(params["endpoint"])
    reason = etcd.unresolved(endpoint, "locksmith_etcd_tls.endpoint")
    if reason:
        return Plan(blocked=reason)
    values = {
        "LOCKSMITHD_ENDPOINT": endpoint,
        "LOCKSMITHD_ETCD_CAFILE": etcd.tls_value(params, "ca_file"),
        "LOCKSMITHD_ETCD_CERTFILE": cert,
        "LOCKSMITHD_ETCD_KEYFILE": key,
    }
    steps: list[Step] = write_if_changed(facts, DROPIN, etcd.env_dropin(values))
    for path in UPDATE_CONFS:
        current = facts.file(path)
        if current.kind == "file" and current.content is not None:
            stripped = _strip_keys(current.content)
            if stripped != current.content:
                steps += write_if_changed(facts, path, stripped, mode="0" + current.mode)
    restart = ("systemctl daemon-reload", f"systemctl try-restart {shlex.quote(UNIT)}")
    return Plan(
        steps=tuple(steps),
        post=restart,
        rollback_post=restart,
        precheck=(etcd.https_precheck(split_urls(endpoint)[0], params),),
    )
