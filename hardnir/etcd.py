"""Shared helpers of the three etcd TLS controls: effective environments, TLS inputs and reachability probes."""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from typing import Any

from hardnir.facts import Facts, is_loopback_host, split_urls, url_host
from hardnir.filesafe import environment_line
from hardnir.params import PLACEHOLDER

ETCD_UNITS = ("etcd2.service", "etcd-member.service", "etcd.service")
TLS_KEYS = ("ca_file", "cert_file", "key_file")

# Every etcd endpoint candidate (loopback and each global IPv4 address, ports 2379 and 4001) over http, and over
# https without a client certificate. A port nothing listens on (the probe's `ss` output) is reported as curl would
# (exit 7) without running curl; the rest are fetched by one curl process in parallel (OpenSSL starts once). One
# line per URL in a fixed order. Curl older than 7.75 (no --parallel or %{exitcode}) gets one call per URL.
_REACH = r"""_d=$HARDNIR_PROBE_DIR; _ips=127.0.0.1; _ports=
while read -r a; do case $a in *:*) ;; *) _ips="$_ips ${a%/*}" ;; esac; done <"$_d/addrs"
while read -r _ _ _ a _; do case $a in *:2379) _ports="$_ports 2379" ;; *:4001) _ports="$_ports 4001" ;; esac
done <"$_d/listen"
_n=0; set --
for ip in $_ips; do for port in 2379 4001; do for s in http https; do
  _n=$((_n+1)); case " $_ports " in *" $port "*) set -- "$@" -o "$_d/reach.$_n" "$s://$ip:$port/version" ;; esac
done; done; done
_out=
[ $# -gt 0 ] && { curl -sSk -m 2 --parallel --parallel-immediate \
  -w '%{url_effective} %{exitcode} %{errormsg}\n' "$@" >"$_d/reach.out" 2>/dev/null
  while IFS= read -r _l; do _out="$_out$_l$NL"; done <"$_d/reach.out"; }
_n=0
for ip in $_ips; do for port in 2379 4001; do for s in http https; do
  _n=$((_n+1)); _u="$s://$ip:$port/version"; _b=
  case " $_ports " in
    *" $port "*)
      case "$_out" in
        *"$_u "*) _r=${_out#*"$_u "}; _r=${_r%%"$NL"*}; _rc=${_r%% *}; _b=${_r#* }
          [ "$_rc" = 0 ] && { read -r _b <"$_d/reach.$_n" || true; } ;;
        *) if [ $s = http ]; then _b=$(curl -sS -m 2 "$_u" 2>&1); else _b=$(curl -sSk -m 2 "$_u" 2>&1); fi
          _rc=$? ;;
      esac ;;
    *) _rc=7; _b="nothing listens on port $port" ;;
  esac
  [ $s = http ] && _l=http || _l=https-nocert
  printf '%s %s:%s %s %.120s\n' "$_l" "$ip" "$port" "$_rc" "${_b%%"$NL"*}"
done; done; done"""


def reach_probe() -> tuple[str, str]:
    """One line per probe: `<scheme> <host:port> <curl rc> <first bytes of the answer>`."""
    return "cmd:etcd-reach", _REACH


def reachability(facts: Facts) -> list[tuple[str, str, bool, str]]:
    """(scheme, host:port, answered, first bytes) per probe; `answered` means etcd replied with JSON."""
    out = []
    for line in facts.text("cmd:etcd-reach").splitlines():
        parts = line.split(" ", 3)
        if len(parts) < 3:
            continue
        body = parts[3] if len(parts) > 3 else ""
        answered = parts[2] == "0" and body.startswith("{")
        out.append((parts[0], parts[1], answered, body))
    return out


def active_etcd_unit(facts: Facts) -> str | None:
    for name in ETCD_UNITS:
        unit = facts.unit(name)
        if unit.exists and not unit.masked and (unit.active or unit.is_enabled in ("enabled", "static")):
            return name
    return None


def effective_env(facts: Facts, unit: str) -> tuple[dict[str, str], str]:
    """The environment the service runs with, and where it came from.

    The running process is the truth when there is one; otherwise the unit's Environment= overridden by its
    EnvironmentFiles (systemd reads those after Environment=).
    """
    proc = facts.process_env(unit)
    if proc is not None:
        return proc, "running process"
    env = dict(facts.unit(unit).environment)
    for values in facts.env_files(unit).values():
        env.update(values)
    return env, "unit configuration"


def configured_env(facts: Facts, unit: str) -> dict[str, str]:
    env = dict(facts.unit(unit).environment)
    for values in facts.env_files(unit).values():
        env.update(values)
    return env


def standalone_member(facts: Facts) -> bool:
    """True when this host's etcd cannot have members on other hosts, so restarting it cannot cost any
    multi-host cluster its quorum: no discovery or proxy mode, and its peer listener, advertised peer URLs and
    initial cluster are all loopback (explicitly or by etcd's localhost defaults). Anything else is treated as a
    member of a shared cluster (restarted one host at a time)."""
    unit = active_etcd_unit(facts)
    if unit is None:
        return False
    env, _ = effective_env(facts, unit)
    if env.get("ETCD_DISCOVERY") or env.get("ETCD_DISCOVERY_SRV") or env.get("ETCD_PROXY", "off") != "off":
        return False
    default_peers = "http://localhost:2380,http://localhost:7001"
    urls = split_urls(env.get("ETCD_LISTEN_PEER_URLS", default_peers))
    urls += split_urls(env.get("ETCD_INITIAL_ADVERTISE_PEER_URLS", default_peers))
    urls += [m.partition("=")[2] for m in split_urls(env.get("ETCD_INITIAL_CLUSTER", ""))]
    return bool(urls) and all(is_loopback_host(url_host(u)) for u in urls)


def http_routable(urls: str) -> list[str]:
    return [u for u in split_urls(urls) if u.startswith("http://") and not is_loopback_host(url_host(u))]


def missing_tls_inputs(params: Mapping[str, Any], keys: tuple[str, ...] = TLS_KEYS) -> list[str]:
    tls = params.get("etcd_tls") or {}
    if not isinstance(tls, Mapping):
        return [f"etcd_tls.{k}" for k in keys]
    return [f"etcd_tls.{k}" for k in keys if not tls.get(k)]


def tls_value(params: Mapping[str, Any], key: str) -> str:
    tls = params.get("etcd_tls") or {}
    return str(tls.get(key, "")) if isinstance(tls, Mapping) else ""


def client_pair(params: Mapping[str, Any]) -> tuple[str, str]:
    """The client certificate and key fleet and locksmith use (falls back to the server pair)."""
    cert = tls_value(params, "client_cert_file") or tls_value(params, "cert_file")
    key = tls_value(params, "client_key_file") or tls_value(params, "key_file")
    return cert, key


def https_precheck(url: str, params: Mapping[str, Any]) -> str:
    """A command that succeeds only when etcd at `url` answers https with the CA and client certificate."""
    cert, key = client_pair(params)
    q = shlex.quote
    return (
        f"curl -sf -m 5 --cacert {q(tls_value(params, 'ca_file'))} --cert {q(cert)} --key {q(key)} "
        f"{q(url.rstrip('/') + '/version')}"
    )


def client_tls_problems(urls: str, ca: str, cert: str, key: str, who: str) -> list[str]:
    problems = []
    plain = [u for u in split_urls(urls) if u.startswith("http://")]
    if plain:
        problems.append(f"{who} talks to etcd over plain http ({', '.join(plain)})")
    odd = [u for u in split_urls(urls) if not u.startswith(("http://", "https://"))]
    if odd:
        problems.append(f"{who} has etcd endpoints that are not https URLs ({', '.join(odd)})")
    if any(u.startswith("https://") for u in split_urls(urls)):
        missing = [n for n, v in (("CA file", ca), ("certificate", cert), ("key", key)) if not v]
        if missing:
            problems.append(f"{who} uses https without {', '.join(missing)}")
    return problems


def env_dropin(values: Mapping[str, str]) -> str:
    """A `[Service]` drop-in of `Environment=` lines, each value escaped for systemd."""
    return "[Service]\n" + "".join(environment_line(k, v) for k, v in values.items())


def unresolved(urls: str, name: str) -> str:
    """A blocked-plan reason when `{address}` could not be filled (the hostname is no address or DNS name)."""
    if PLACEHOLDER not in urls:
        return ""
    return f"{name} {urls} needs {PLACEHOLDER}, but the inventory hostname is not an address or DNS name"


def dropin_name(facts: Facts, unit: str, base: str) -> str:
    """`40-hardnir-*.conf`, or `99-...` when a foreign drop-in sorts after 40 and would override ours."""
    ours = {base, base.replace("40-", "99-", 1)}
    later = [
        p for p in facts.unit(unit).drop_ins if p.rsplit("/", 1)[-1] not in ours and p.rsplit("/", 1)[-1] > base
    ]
    return base.replace("40-", "99-", 1) if later else base
