"""A host's effective data: merged key by key from every inventory layer, with where each value came from.

Nornir resolves host data per top-level key (the host's `sshd_socket` mapping hides its group's whole
`sshd_socket` mapping). hardnir merges deeper, in this order, later wins:

1. the control module's defaults (`PARAMS`),
2. `defaults.yaml` data,
3. each group, from the last to the first in Nornir's group order (`Host.extended_groups()`: the host's groups in
   the order listed, each followed by its own parent groups), so the host's first group wins over its second,
4. the host's own data.

Mappings are merged key by key; any other value (a list included) replaces the one before it. `check_inventory`
validates every host's merged parameters and every layer's connection extras before any connection, and names
the file, group or host that wrote a bad value.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hardnir.control import Control, catalogue
from hardnir.params import SHARED, Param, ParamError, check_section, did_you_mean
from hardnir.ssh import CONNECTION_NAME, DEFAULT_COMMAND_TIMEOUT, DEFAULT_CONNECT_TIMEOUT, DEFAULT_KNOWN_HOSTS

FALLBACK_KEY = "hardnir_fallback"


def _secret_trio(name: str, doc: str) -> tuple[Param, ...]:
    return (
        Param(name, "secret", None, doc, secret=True),
        Param(f"{name}_env", "env_name", None, f"environment variable holding the {name}"),
        Param(f"{name}_file", "local_path", None, f"file holding the {name}"),
    )


_LOGIN = (
    Param("key_filename", "local_paths", None, "private key file(s) (default: ssh-agent, then ~/.ssh/id_*)"),
    *_secret_trio("passphrase", "passphrase of the key files"),
)
EXTRAS: tuple[Param, ...] = (
    *_LOGIN,
    Param("known_hosts", "local_path", DEFAULT_KNOWN_HOSTS, "known_hosts file the host keys are checked against"),
    Param("host_key_policy", "choice", "strict", "strict: unknown keys are refused; accept-new: recorded "
          "(a changed key is always refused)", choices=("strict", "accept-new")),
    Param("connect_timeout", "number", DEFAULT_CONNECT_TIMEOUT, "seconds for one connection: TCP, banner, key "
          "exchange and authentication", minimum=1, maximum=300),
    Param("command_timeout", "number", DEFAULT_COMMAND_TIMEOUT, "seconds one remote command may run",
          minimum=1, maximum=86400),
    *_secret_trio("sudo_password", "sudo password, only when sudo needs one"),
    JUMP_HOST := Param("jump_host", "section", None, "a bastion to connect through", fields=(
        Param("hostname", "host", None, "the bastion's address"),
        Param("port", "int", 22, "the bastion's SSH port", minimum=1, maximum=65535),
        Param("username", "name", None, "login on the bastion (default: the host's username)"),
        *_secret_trio("password", "password on the bastion"),
        *_LOGIN,
    )),
)
FALLBACK = Param(FALLBACK_KEY, "section", None, "a second admin path, proven before and after lockout-risky fixes",
                 fields=(
                     Param("username", "name", None, "the fallback admin's login"),
                     Param("hostname", "host", None, "address (default: the host's)"),
                     Param("port", "int", None, "SSH port (default: the host's)", minimum=1, maximum=65535),
                     *(p for p in EXTRAS if p.name != "jump_host"),
                 ))
EXTRAS_PATH = ("connection_options", CONNECTION_NAME, "extras")


@dataclass(frozen=True)
class Origin:
    """Where a value came from: the control's default, defaults.yaml, a group or the host."""

    kind: str  # default | defaults | group | host
    name: str = ""

    def __str__(self) -> str:
        return {"default": "default", "defaults": "defaults.yaml"}.get(self.kind, f"{self.kind} {self.name}")

    @property
    def file(self) -> str:
        return {"default": "", "defaults": "defaults.yaml", "group": "groups.yaml"}.get(self.kind, "hosts.yaml")


Origins = dict[tuple[str, ...], Origin]


def module_defaults(controls: Iterable[Control]) -> dict[str, Any]:
    data: dict[str, Any] = {name: p.default for name, p in SHARED.items() if p.default is not None}
    for control in controls:
        data.setdefault(control.param_key, {}).update(control.defaults)
    return data


def layers(host: Any) -> list[tuple[Origin, Mapping[str, Any]]]:
    """The host's data layers, lowest precedence first (module defaults not included)."""
    out: list[tuple[Origin, Mapping[str, Any]]] = [(Origin("defaults"), host.defaults.data or {})]
    out += [(Origin("group", g.name), g.data or {}) for g in reversed(host.extended_groups())]
    out.append((Origin("host", host.name), host.data or {}))
    return out


def deep_merge(stack: Sequence[tuple[Origin, Mapping[str, Any]]], *,
               track: bool = True) -> tuple[dict[str, Any], Origins]:
    """Merge mappings key by key (later wins; lists and scalars replace); the origin of every leaf (none when not
    `track`ed: the run only needs the values, messages need the origins)."""
    merged: dict[str, Any] = {}
    origins: Origins = {}

    def put(target: dict[str, Any], key: str, value: Any, path: tuple[str, ...], origin: Origin) -> None:
        if isinstance(value, Mapping) and isinstance(target.get(key), dict):
            for k, v in value.items():
                put(target[key], str(k), v, (*path, str(k)), origin)
            return
        if track and isinstance(target.get(key), dict):  # a mapping replaced wholesale: forget its leaves' origins
            for known in [p for p in origins if p[:len(path)] == path]:
                del origins[known]
        target[key] = _copy(value)
        if track:
            origins[path] = origin
            if isinstance(value, Mapping):
                for sub in _leaves(value, path):
                    origins[sub] = origin

    for origin, data in stack:
        for key, value in data.items():
            put(merged, str(key), value, (str(key),), origin)
    return merged, origins


def _copy(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _copy(v) for k, v in value.items()}
    return list(value) if isinstance(value, list) else value


def _leaves(value: Mapping[str, Any], path: tuple[str, ...]) -> list[tuple[str, ...]]:
    out = []
    for k, v in value.items():
        sub = (*path, str(k))
        out += _leaves(v, sub) if isinstance(v, Mapping) else [sub]
    return out


def origin_of(origins: Origins, path: tuple[str, ...]) -> Origin:
    """The origin of the value at `path`, or of its nearest enclosing value; the module default otherwise."""
    for end in range(len(path), 0, -1):
        if path[:end] in origins:
            return origins[path[:end]]
    return Origin("default")


def merged_data(host: Any, controls: Iterable[Control] | None = None, *,
                track: bool = True) -> tuple[dict[str, Any], Origins]:
    defaults = module_defaults(controls) if controls else _catalogue_defaults()
    return deep_merge([(Origin("default"), defaults), *layers(host)], track=track)


_DEFAULTS: tuple[dict[str, Control], dict[str, Any]] | None = None  # the catalogue and its controls' defaults


def _catalogue_defaults() -> dict[str, Any]:
    """Every control's defaults, worked out once per catalogue (`deep_merge` copies what it takes)."""
    global _DEFAULTS
    cat = catalogue()
    if _DEFAULTS is None or _DEFAULTS[0] is not cat:
        _DEFAULTS = (cat, module_defaults(cat.values()))
    return _DEFAULTS[1]


# (id(host), control id) -> (host, params); (id(host), "") -> (host, the host's merged data for every control)
_PARAMS: dict[tuple[int, str], tuple[Any, dict[str, Any]]] = {}
_PARAMS_LOCK = threading.Lock()


def control_params(host: Any, control: Control) -> dict[str, Any]:
    """The validated parameters of `control` on `host` (ParamError if invalid; `check_inventory` runs first).

    Merged once per host and control while the host is being worked on (the probe, every check and every fix
    ask for them); `forget(host)` drops them when the host is done. The entry holds the host, so its id cannot
    be reused by another object while the entry lives."""
    key = (id(host), control.id)
    cached = _PARAMS.get(key)
    if cached is not None and cached[0] is host:
        return dict(cached[1])
    merged = _PARAMS.get((id(host), ""))
    if merged is None or merged[0] is not host:  # every control's data merged in one pass, once per host
        merged = (host, merged_data(host, track=False)[0])
        with _PARAMS_LOCK:
            _PARAMS[(id(host), "")] = merged
    params = control.params(merged[1], str(host.hostname or ""))
    with _PARAMS_LOCK:
        _PARAMS[key] = (host, params)
    return dict(params)


def forget(host: Any) -> None:
    """Drop the cached parameters of a host whose work is done."""
    with _PARAMS_LOCK:
        for key in [k for k in _PARAMS if k[0] == id(host)]:
            del _PARAMS[key]


def _extras_of(obj: Any) -> Any:
    options = getattr(obj, "connection_options", {}) or {}
    opt = options.get(CONNECTION_NAME)
    return None if opt is None else opt.extras


def _is_shared(path: tuple[str, ...]) -> bool:
    """Whether `path` names a shared parameter (not a control's own key that lives in the same section)."""
    shared = SHARED.get(path[0])
    return shared is not None and (len(path) == 1 or path[1] in {f.name for f in shared.fields})


def _where(origin: Origin, files: Mapping[str, str], host: str = "") -> str:
    file = files.get(origin.file, origin.file)
    who = "" if origin.kind == "defaults" else f"{origin.kind} {origin.name!r}"
    seen = f" (host {host!r})" if host and origin.kind != "host" else ""
    return ": ".join(p for p in (file, who) if p) + seen


def check_inventory(nr: Any, files: Mapping[str, str] | None = None) -> list[str]:
    """Every problem in the inventory's parameters and connection extras, one line each, without connecting.

    `files` maps `hosts.yaml`/`groups.yaml`/`defaults.yaml` to the paths to name in messages."""
    files = files or {}
    controls = list(catalogue().values())
    known_top = [*(c.param_key for c in controls), *SHARED, FALLBACK_KEY]
    inv = nr.inventory
    objects: list[tuple[Origin, Any]] = [(Origin("defaults"), inv.defaults)]
    objects += [(Origin("group", n), g) for n, g in inv.groups.items()]
    objects += [(Origin("host", n), h) for n, h in inv.hosts.items()]
    messages: list[str] = []

    def add(text: str) -> None:
        if text not in messages:
            messages.append(text)

    for origin, obj in objects:  # each layer once: typos at the top level, connection extras, fallback
        for key in obj.data or {}:
            hint = "" if key in known_top else did_you_mean(str(key), known_top)
            if hint:
                add(f"{_where(origin, files)}: data key {key!r} is not a hardnir parameter{hint}")
        layer_problems = check_section(EXTRAS, _extras_of(obj), EXTRAS_PATH, fill_defaults=False)[1]
        fallback = (obj.data or {}).get(FALLBACK_KEY)
        if fallback is not None:
            layer_problems += check_section(FALLBACK.fields, fallback, (FALLBACK_KEY,), fill_defaults=False)[1]
        for problem in layer_problems:
            add(f"{_where(origin, files)}: {problem}")
    for name, host in inv.hosts.items():
        data = merged_data(host, track=False)[0]
        found = [(c, p) for c in controls for p in c.resolve(data, str(host.hostname or ""))[1]]
        origins = merged_data(host)[1] if found else {}  # where a bad value came from, for the message
        for control, problem in found:
            label = "" if _is_shared(problem.path) else f"{control.id}: "  # once for all its readers
            add(f"{_where(origin_of(origins, problem.path), files, name)}: {label}{problem}")
    return messages


def validate(nr: Any, files: Mapping[str, str] | None = None) -> None:
    """ParamError (one line: the first problem, and how many more) unless the whole inventory is valid."""
    messages = check_inventory(nr, files)
    if messages:
        more = f" (and {len(messages) - 1} more problem(s))" if len(messages) > 1 else ""
        raise ParamError(messages[0] + more)


def _shown(param: Param | None, value: Any) -> Any:
    if param is not None and param.secret and value is not None:
        return "***"
    return value


def effective(host: Any, controls: Sequence[Control]) -> dict[str, Any]:
    """Per control, each effective parameter's value and origin (`hardnir params`); secrets shown as ***."""
    data, origins = merged_data(host, controls)
    address = str(host.hostname or "")
    out: dict[str, Any] = {}
    for control in controls:
        params, problems = control.resolve(data, address)
        if problems:
            raise ParamError(f"host {host.name!r}: {control.id}: {problems[0]}")
        entry: dict[str, Any] = {}
        for param in control.fields:
            path = (control.param_key, param.name)
            entry[param.name] = {"value": params.get(param.name), "from": str(origin_of(origins, path))}
        for name in control.shared:
            shared = SHARED[name]
            for field in shared.fields or (shared,):
                where: tuple[str, ...] = (name, field.name) if shared.fields else (name,)
                value = params.get(name, {}).get(field.name) if shared.fields else params.get(name)
                entry[".".join(where)] = {"value": value, "from": str(origin_of(origins, where))
                                          if value is not None else "unset"}
        out[control.id] = entry
    return out


def connection(host: Any) -> dict[str, Any]:
    """The host's connection settings as hardnir will use them (secrets shown as ***)."""
    params = host.get_connection_parameters(CONNECTION_NAME)
    extras = check_section(EXTRAS, params.extras, EXTRAS_PATH)[0]
    shown = {p.name: _shown(p, extras.get(p.name)) for p in EXTRAS if extras.get(p.name) is not None}
    if isinstance(shown.get("jump_host"), Mapping):
        fields = {p.name: p for p in JUMP_HOST.fields}
        shown["jump_host"] = {k: _shown(fields.get(k), v) for k, v in shown["jump_host"].items()}
    return {
        "hostname": params.hostname,
        "port": params.port or 22,
        "username": params.username,
        "password": "***" if params.password else None,
        "extras": shown,
    }
