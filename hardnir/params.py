"""Declared parameters: names, kinds, allowed values, defaults and docs, written once and checked before any SSH.

Each control module declares `PARAMS` (a tuple of `Param`, read from the host data under the control's key, e.g.
`sshd_socket: {policy: ...}`) and `SHARED` (the names of shared parameters it reads, declared once here:
`etcd_tls`, `etcd_cluster`, `hardnir_deadman_seconds`). `resolve` turns a host's merged data into the validated,
complete parameters a control's functions receive; every problem comes back as a `Problem` naming the key path,
so the caller can say which file, group or host wrote the bad value.

Kinds that end up in a file or a command line are parsed, not pattern-matched: a listen entry is an address and
port, a path is absolute and normalised, a URL is parsed as one. `{address}` (the inventory hostname) is the only
placeholder; it is filled only when the hostname itself is an IP address (listen entries) or an address or DNS
name (URLs), otherwise the value keeps the placeholder and the fix is blocked.
"""

from __future__ import annotations

import difflib
import functools
import ipaddress
import posixpath
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

PLACEHOLDER = "{address}"
SAMPLE_ADDRESS = "192.0.2.1"  # TEST-NET-1: stands in for {address} when a template is checked
MAX_TEXT = 4096
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")
_PATH = re.compile(r"^/[A-Za-z0-9._@+/-]*$")
_USER = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
_DNS_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")


class ParamError(ValueError):
    """Invalid parameters (a usage error): one line naming where, which key and what is allowed."""


@dataclass(frozen=True)
class Problem:
    path: tuple[str, ...]  # the key path in host data, e.g. ("sshd_socket", "policy")
    text: str

    def __str__(self) -> str:
        return f"{'.'.join(self.path)}: {self.text}"


class _Bad(Exception):
    """Raised by a kind's parser; the message says what is allowed."""


@dataclass(frozen=True)
class Param:
    """One declared parameter. `kind` names a parser in `KINDS`; `fields` are the sub-parameters of a section."""

    name: str
    kind: str
    default: Any
    doc: str
    choices: tuple[str, ...] = ()
    aliases: tuple[tuple[str, str], ...] = ()  # deprecated spelling -> current one (accepted, documented)
    minimum: float | None = None
    maximum: float | None = None
    secret: bool = False
    fields: tuple[Param, ...] = ()

    def describe(self) -> str:
        """What the parameter accepts, in a few words (for errors, `hardnir controls --params` and docs)."""
        if self.kind == "choice":
            text = " or ".join(self.choices)
            if self.aliases:
                text += " (deprecated: " + ", ".join(f"{old} = {new}" for old, new in self.aliases) + ")"
            return text
        if self.kind in ("int", "number"):
            return f"a number from {self.minimum:g} to {self.maximum:g}"
        if self.kind == "section":
            return "a mapping of " + ", ".join(f.name for f in self.fields)
        return KIND_DOCS[self.kind]


def did_you_mean(word: str, known: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, list(known), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise _Bad(f"must be text, not {type(value).__name__}")
    if _CONTROL_CHARS.search(value):
        raise _Bad("must not contain newlines or control characters")
    if len(value) > MAX_TEXT:
        raise _Bad(f"is longer than {MAX_TEXT} characters")
    return value


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _choice(value: Any, param: Param) -> str:
    aliases = dict(param.aliases)
    if isinstance(value, str) and value in aliases:
        return aliases[value]
    if not isinstance(value, str) or value not in param.choices:
        hint = did_you_mean(value, param.choices) if isinstance(value, str) else ""
        raise _Bad(f"{_show(value)} is not allowed; use {param.describe()}{hint}")
    return value


def _number(value: Any, param: Param) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _Bad(f"{_show(value)} is not a number; use {param.describe()}")
    if (param.minimum is not None and value < param.minimum) or (param.maximum is not None and value > param.maximum):
        raise _Bad(f"{value!r} is out of range; use {param.describe()}")
    return float(value)


def _int(value: Any, param: Param) -> int:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int):
        raise _Bad(f"{_show(value)} is not a whole number; use {param.describe()}")
    return int(_number(value, param))


def _pattern(regex: re.Pattern[str], what: str) -> Callable[[Any, Param], str]:
    def parse(value: Any, param: Param) -> str:
        if not isinstance(value, str) or not regex.match(value):
            raise _Bad(f"{_show(value)} is not {what}")
        return value

    return parse


def _path(value: Any, param: Param) -> str:
    text = _text(value)
    if not _PATH.match(text) or posixpath.normpath(text) != text or text.startswith("//"):
        raise _Bad(f"{_show(value)} is not {KIND_DOCS['path']}")
    return text


def _local_path(value: Any, param: Param) -> str:
    text = _text(value)
    if not text:
        raise _Bad("must not be empty")
    return text


def _local_paths(value: Any, param: Param) -> list[str]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items:
        raise _Bad("must be a path or a list of paths")
    return [_local_path(item, param) for item in items]


def _secret(value: Any, param: Param) -> str:
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or "\n" in value or "\x00" in value:
        raise _Bad("must be one line of text")
    return value


@functools.lru_cache(maxsize=1024)  # every host's address is checked by several parameters
def is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def is_host(text: str) -> bool:
    """An IP address or a DNS name (letters, digits, hyphens; dot-separated labels)."""
    if is_ip(text):
        return True
    name = text[:-1] if text.endswith(".") else text
    return 0 < len(name) <= 253 and all(_DNS_LABEL.match(label) for label in name.split("."))


def _host(value: Any, param: Param) -> str:
    if not isinstance(value, str) or not is_host(value):
        raise _Bad(f"{_show(value)} is not {KIND_DOCS['host']}")
    return value


def _port_number(text: str, whole: str) -> str:
    if not text.isdigit() or not 0 < int(text) < 65536 or text != str(int(text)):
        raise _Bad(f"{whole!r} has no valid port (1-65535)")
    return text


def parse_listen(entry: str) -> tuple[str, str]:
    """(address, port) of a listen entry: `IPv4:port`, `[IPv6]:port` or a port alone (address '')."""
    text = _text(entry)
    if text.isdigit():
        return "", _port_number(text, text)
    if text.startswith("["):
        host, sep, port = text[1:].partition("]:")
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise _Bad(f"{text!r} is not {KIND_DOCS['listen']}") from None
        return host, _port_number(port, text) if sep else _port_number("", text)
    host, _, port = text.rpartition(":")
    try:
        ipaddress.IPv4Address(host)
    except ValueError:
        raise _Bad(f"{text!r} is not {KIND_DOCS['listen']}") from None
    return host, _port_number(port, text)


def _fill(template: str, address: str, ok: Callable[[str], bool]) -> str:
    """Fill `{address}` when `ok(address)`; otherwise keep the placeholder (the fix will be blocked)."""
    if PLACEHOLDER not in template or not ok(address):
        return template
    shown = f"[{address}]" if ":" in address and f"[{PLACEHOLDER}]" not in template else address
    return template.replace(PLACEHOLDER, shown)


def _no_other_braces(text: str) -> None:
    if "{" in text.replace(PLACEHOLDER, "") or "}" in text.replace(PLACEHOLDER, ""):
        raise _Bad(f"{_show(text)}: the only placeholder is {PLACEHOLDER}")


def _listen_list(value: Any, param: Param, address: str) -> list[str]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items:
        raise _Bad("must be a non-empty list of listen entries (IPv4:port, [IPv6]:port or a port)")
    if all(isinstance(item, str) for item in items):
        return list(_filled_listen(tuple(items), address))
    return [_listen_entry(item, address) for item in items]  # a non-text entry: its error


# Template parsers are pure functions of (value, address): memoised, since every host, and every control reading
# the same template (three etcd URL lists default to https://{address}:2379), would parse the same text again.
# Validation (`hostdata.check_inventory`) and the run resolve the same values. Bounded: entries are a few hundred
# bytes; a fleet larger than the cache still shares the entries of each host's own controls.
_TEMPLATE_CACHE = 8192


@functools.lru_cache(maxsize=_TEMPLATE_CACHE)
def _filled_listen(items: tuple[str, ...], address: str) -> tuple[str, ...]:
    return tuple(_listen_entry(item, address) for item in items)


def _listen_entry(item: Any, address: str) -> str:
    text = _text(item)
    _no_other_braces(text)
    filled = _fill(text, address, is_ip)
    parse_listen(filled.replace(PLACEHOLDER, SAMPLE_ADDRESS))  # unfilled: the template's shape is checked
    return filled


def parse_url(url: str, schemes: Sequence[str]) -> str:
    """Check one URL: an allowed scheme, a host that is an address or DNS name, an optional port, no extras."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise _Bad(f"{url!r} is not a URL") from None
    if parts.scheme not in schemes:
        raise _Bad(f"{url!r} must start with {' or '.join(s + '://' for s in schemes)}")
    if not parts.hostname or not is_host(parts.hostname) or parts.username or parts.password:
        raise _Bad(f"{url!r} has no valid host (an address or DNS name)")
    if parts.path not in ("", "/") or parts.query or parts.fragment or port == 0:
        raise _Bad(f"{url!r} must be scheme://host[:port] only")
    return url


_URL_PATH = re.compile(r"^(/[A-Za-z0-9._~+-]*)*/?$")  # no % (escapes, systemd specifiers), no quotes


def _https_url(value: Any, param: Param) -> str:
    """One https:// URL with an optional plain path (e.g. a FleetLock base URL), or "" (the control's default)."""
    text = _text(value)
    if not text:
        return text
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        raise _Bad(f"{_show(text)} is not a URL") from None
    if parts.scheme != "https" or not parts.hostname or not is_host(parts.hostname) or parts.username \
            or parts.password or parts.query or parts.fragment or port == 0 or not _URL_PATH.match(parts.path):
        raise _Bad(f"{_show(text)} is not {KIND_DOCS['https_url']}")
    return text


def _url_list(value: Any, param: Param, address: str) -> str:
    return _filled_urls(_text(value), address, param.choices or ("https",))


@functools.lru_cache(maxsize=_TEMPLATE_CACHE)
def _filled_urls(text: str, address: str, schemes: tuple[str, ...]) -> str:
    _no_other_braces(text)
    filled = _fill(text, address, is_host)
    urls = [u.strip() for u in filled.split(",")]
    if not all(urls):
        raise _Bad(f"{_show(text)} is not a comma-separated list of URLs")
    for url in urls:  # unfilled: the template's shape is checked
        parse_url(url.replace(PLACEHOLDER, SAMPLE_ADDRESS), schemes)
    return ",".join(urls)


Parser = Callable[[Any, Param], Any]
TemplateParser = Callable[[Any, Param, str], Any]

KINDS: dict[str, Parser] = {
    "choice": _choice,
    "int": _int,
    "number": _number,
    "user": _pattern(_USER, "a user name (lower-case letters, digits, _ and -, up to 32)"),
    "name": _pattern(_NAME, "a name of letters, digits, '.', '_' and '-' (up to 64)"),
    "env_name": _pattern(_ENV_NAME, "an environment variable name"),
    "path": _path,
    "local_path": _local_path,
    "local_paths": _local_paths,
    "secret": _secret,
    "host": _host,
    "https_url": _https_url,
}
TEMPLATE_KINDS: dict[str, TemplateParser] = {"listen_list": _listen_list, "url_list": _url_list}
KIND_DOCS = {
    "user": "a user name",
    "name": "a name of letters, digits, '.', '_' and '-'",
    "env_name": "an environment variable name",
    "path": "an absolute, normalised path of letters, digits and . _ @ + - /",
    "local_path": "a local file path",
    "local_paths": "a local file path or a list of them",
    "secret": "a secret (one line; shown as ***)",
    "host": "an IP address or DNS name",
    "listen": "a listen entry: IPv4:port, [IPv6]:port or a port",
    "listen_list": "a list of listen entries: IPv4:port, [IPv6]:port or a port; {address} is the hostname",
    "url_list": "comma-separated https:// URLs (host[:port] only); {address} is the hostname",
    "https_url": "one https://host[:port][/path] URL (letters, digits and . _ ~ + - in the path), or empty",
}


def check_section(
    fields: Sequence[Param], value: Any, path: tuple[str, ...], address: str = SAMPLE_ADDRESS,
    *, fill_defaults: bool = True, others_ok: bool = False,
) -> tuple[dict[str, Any], list[Problem]]:
    """Validate one mapping of declared parameters; returns the normalised values (defaults filled in).

    `others_ok`: keys not declared here are someone else's (a shared section read by a control that does not
    own it) and are left to the owner to judge."""
    if value is None:
        value = {}
    if not isinstance(value, Mapping):
        return {}, [Problem(path, f"must be a mapping of {', '.join(f.name for f in fields)}, "
                                  f"not {type(value).__name__}")]
    known = {f.name: f for f in fields}
    problems = [
        Problem((*path, str(key)), f"unknown key; known: {', '.join(known)}{did_you_mean(str(key), list(known))}")
        for key in value if key not in known and not others_ok
    ]
    out: dict[str, Any] = {}
    for name, param in known.items():
        if name in value and value[name] is not None:
            parsed, more = check_value(param, value[name], (*path, name), address)
            problems += more
            if not more:
                out[name] = parsed
        elif fill_defaults and param.default is not None:
            out[name] = check_value(param, param.default, (*path, name), address)[0]
    return out, problems


def check_value(param: Param, value: Any, path: tuple[str, ...], address: str) -> tuple[Any, list[Problem]]:
    if param.kind == "section":
        return check_section(param.fields, value, path, address)
    try:
        if param.kind in TEMPLATE_KINDS:
            return TEMPLATE_KINDS[param.kind](value, param, address), []
        return KINDS[param.kind](value, param), []
    except _Bad as exc:
        return None, [Problem(path, str(exc))]


# ------------------------------------------------------------------ parameters shared by several controls

ETCD_TLS = Param("etcd_tls", "section", None, "where the etcd CA, server and client certificates are on each host",
                 fields=(
    Param("ca_file", "path", None, "CA certificate etcd and its clients trust"),
    Param("cert_file", "path", None, "etcd server certificate"),
    Param("key_file", "path", None, "etcd server key"),
    Param("client_cert_file", "path", None, "client certificate of fleet and locksmithd (default: cert_file)"),
    Param("client_key_file", "path", None, "client key of fleet and locksmithd (default: key_file)"),
))
ETCD_CLUSTER = Param("etcd_cluster", "name", None, "name of the etcd cluster: its members are restarted one at a time")
DEADMAN_SECONDS = Param("hardnir_deadman_seconds", "int", 120, "seconds before the dead-man timer rolls back a "
                        "network change unless a fresh login works", minimum=5, maximum=3600)
SHARED: dict[str, Param] = {p.name: p for p in (ETCD_TLS, ETCD_CLUSTER, DEADMAN_SECONDS)}


def resolve(
    key: str, fields: Sequence[Param], shared: Sequence[str], data: Mapping[str, Any], address: str
) -> tuple[dict[str, Any], list[Problem]]:
    """A control's complete parameters from a host's merged data: its own section, the shared ones, `address`.

    A shared section may live under the control's own key (`etcd_tls` holds the TLS paths and the etcd-tls
    control's own settings): the owner then judges every key of it, the other readers only theirs."""
    own = [*fields, *(SHARED[key].fields if key in shared else ())]
    params, problems = check_section(own, data.get(key), (key,), address)
    for name in shared:
        param = SHARED[name]
        value = data.get(name)
        if param.kind == "section":
            parsed, more = check_section(param.fields, value, (name,), address, others_ok=True)
        elif value is None:
            parsed, more = param.default, []
        else:
            parsed, more = check_value(param, value, (name,), address)
        problems += [p for p in more if p not in problems]
        if parsed is not None:
            params[name] = parsed
    params["address"] = address
    return params, problems
