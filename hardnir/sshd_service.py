"""sshd-socket on Fedora CoreOS: sshd is `sshd.service`, started at boot, not socket-activated.

"While CL used systemd socket activation for sshd, FCOS starts sshd at startup by default"
(coreos/fedora-coreos-docs `migrate-cl.adoc`). So where sshd listens is sshd's own configuration: `ListenAddress`
in `/etc/ssh/sshd_config` and the `sshd_config.d/*.conf` files it includes, read in lexical order. The check
judges what `sshd -T` prints (the effective `listenaddress` list) and the live listeners; `sshd.socket` must not be
enabled or active besides it.

- `restricted`: every effective ListenAddress is one of the policy entries. Fix: `05-hardnir-listen.conf` in
  sshd_config.d, sorting before FCOS's `40-disable-passwords.conf` (coreos/fedora-coreos-config
  `overlay.d/15fcos/etc/ssh/sshd_config.d/`), checked with `sshd -t` before sshd.service is restarted under the
  dead-man timer. ListenAddress values accumulate across files (sshd_config(5)), so a foreign file's entry outside
  the policy cannot be overridden: the plan is blocked and names the file.
- `disabled`: sshd.service masked and stopped, sshd.socket not enabled; lockout-guarded like the socket mask.
Rollback restores the files and restarts sshd.service.

`tasks/sshd_socket.py` hands Fedora CoreOS hosts to :func:`check` and :func:`plan_fix` here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hardnir.control import Finding, Plan, Remove, Step, Symlink, not_applicable, write_if_changed
from hardnir.facts import Facts, is_wildcard_listen, listen_policy_problem, listen_port
from hardnir.params import PLACEHOLDER
from hardnir.platforms import release_test
from hardnir.probe import command_item, file_item, unit_item

CONFIG_DIR = "/etc/ssh/sshd_config.d"
DROPIN = f"{CONFIG_DIR}/05-hardnir-listen.conf"
UNIT_PATH = "/etc/systemd/system/sshd.service"
LISTEN_LINE = r"ListenAddress [0-9A-Fa-f.:\[\]]+"


def _ci(word: str) -> str:
    """A shell pattern matching `word` in any case (what grep -i does)."""
    return "".join(f"[{c.upper()}{c.lower()}]" if c.isalpha() else c for c in word)


# The effective listen list, and which file names which ListenAddress (sshd -T needs root: the probe has it).
ITEMS = (
    # Judged on Fedora CoreOS only (tasks/sshd_socket.py), so run there only: `sshd -T` is one of the probe's
    # dearest processes (it loads sshd's libraries, configuration and host keys).
    command_item("sshd-T-listen", f"if {release_test('fcos')}; then sshd -T >\"$D/sshd-T\" 2>&1; "
                 f"_grep - '{_ci('listenaddress')} *' '{_ci('port')} *' -- \"$D/sshd-T\"; "
                 "else echo 'sshd -T not run: not Fedora CoreOS'; fi"),
    command_item("sshd-listen-files", f"_grep -Hs '{_ci('ListenAddress')}[[:space:]]*' -- /etc/ssh/sshd_config "
                 f"{CONFIG_DIR}/*.conf 2>/dev/null; true", quick=True),
)


def probe_items() -> list[tuple[str, str]]:
    return [unit_item("sshd.service"), unit_item("sshd.socket"), *ITEMS, file_item(DROPIN), file_item(UNIT_PATH)]


def effective_listen(facts: Facts) -> list[str]:
    """`listenaddress` entries of `sshd -T`, e.g. `[::]:22`, `0.0.0.0:22`, `198.19.1.3:22`."""
    return [line.split(None, 1)[1].strip() for line in facts.text("cmd:sshd-T-listen").splitlines()
            if line.lower().startswith("listenaddress ") and len(line.split(None, 1)) == 2]


def listen_sources(facts: Facts) -> dict[str, list[str]]:
    """File -> the ListenAddress values it sets (from grep -H)."""
    out: dict[str, list[str]] = {}
    for line in facts.text("cmd:sshd-listen-files").splitlines():
        path, sep, rest = line.partition(":")
        words = rest.split()
        if sep and len(words) >= 2:
            out.setdefault(path, []).append(words[1])
    return out


def check(facts: Facts, params: Mapping[str, Any]) -> Finding:
    svc = facts.unit("sshd.service")
    sock = facts.unit("sshd.socket")
    policy = str(params["policy"])
    allowed = [str(a) for a in params["listen"]]
    expected = ("sshd.service masked and stopped, sshd.socket off" if policy == "disabled"
                else f"sshd listens only on {', '.join(allowed)}")
    listen = effective_listen(facts)
    ports = {listen_port(e) for e in listen} | {"22"}
    live_wild = [a for a in facts.listeners if is_wildcard_listen(a) and listen_port(a) in ports]
    evidence: dict[str, Any] = {
        "policy": policy,
        "sshd.service": f"{svc.load_state}/{svc.active_state}/{svc.is_enabled}",
        "sshd.socket": f"{sock.load_state}/{sock.active_state}/{sock.is_enabled}",
        "sshd -T listenaddress": listen,
        "ListenAddress set in": listen_sources(facts),
        "live_wildcard_listeners": live_wild,
    }
    if not svc.probed:
        return Finding("error", expected, "unknown", "sshd.service was not probed", evidence)
    if not svc.exists and not sock.active:
        return not_applicable(expected, "no sshd.service and sshd.socket is not active", evidence)
    if sock.active or sock.is_enabled == "enabled":
        return Finding("fail", expected, f"sshd.socket {sock.active_state}/{sock.is_enabled}",
                       "sshd.socket is on besides sshd.service (Fedora CoreOS starts sshd.service; the socket "
                       "listens on every interface)", evidence)
    if policy == "disabled":
        if svc.masked and not svc.active:
            return Finding("pass", expected, "masked", "sshd.service is masked and stopped", evidence)
        return Finding("fail", expected, f"sshd.service {svc.active_state}/{svc.is_enabled}",
                       "sshd.service is not masked" + ("" if svc.active else " (but stopped)"), evidence)
    if not svc.active:
        return Finding("pass", expected, f"sshd.service {svc.active_state}", "sshd.service is not running",
                       evidence)
    observed = ", ".join(listen) or "sshd -T printed no listenaddress"
    if not listen:
        return Finding("error", expected, observed, f"sshd -T failed: {facts.text('cmd:sshd-T-listen')[:200]}",
                       evidence)
    problem = listen_policy_problem(listen, allowed, entries="ListenAddress")
    if problem:
        return Finding("fail", expected, observed, f"sshd.service {problem}", evidence)
    if live_wild:
        return Finding("fail", expected, observed + f" (live: {', '.join(live_wild)})",
                       "configured correctly but sshd still listens on all interfaces (restart of sshd.service "
                       "pending)", evidence)
    return Finding("pass", expected, observed, "sshd.service listens only on policy addresses", evidence)


def plan_fix(facts: Facts, params: Mapping[str, Any]) -> Plan:
    if check(facts, params).status != "fail":
        return Plan()
    policy = str(params["policy"])
    rollback_post = ("systemctl daemon-reload", "systemctl restart sshd.service")
    sock = facts.unit("sshd.socket")
    steps: list[Step] = []
    if policy == "disabled":
        current = facts.file(UNIT_PATH)
        if not (current.kind == "link" and current.target == "/dev/null"):
            if current.exists:
                steps.append(Remove(UNIT_PATH, old=current.kind))
            steps.append(Symlink(UNIT_PATH, "/dev/null", old=current.kind))
        return Plan(steps=tuple(steps), post=("systemctl daemon-reload", "systemctl stop sshd.service"),
                    rollback_post=rollback_post,
                    lockout="masking sshd.service stops every new SSH login, including this tool's", deadman=True)
    if sock.active or sock.is_enabled == "enabled":
        return Plan(blocked="sshd.socket is on besides sshd.service: disable it first (systemctl disable --now "
                    "sshd.socket) or use policy disabled")
    allowed = [str(a) for a in params["listen"]]
    if any(PLACEHOLDER in a for a in allowed):
        return Plan(blocked="sshd_socket.listen must name the addresses to keep, e.g. ['10.0.0.5:22'] (the "
                    "hostname is not an IP address, so {address} cannot be used)")
    if any(is_wildcard_listen(a) for a in allowed):
        return Plan(blocked=f"sshd_socket.listen contains a wildcard: {', '.join(allowed)}")
    foreign = {path: [v for v in values if v not in allowed]
               for path, values in listen_sources(facts).items() if path != DROPIN}
    foreign = {path: values for path, values in foreign.items() if values}
    if foreign:
        shown = "; ".join(f"{path}: {', '.join(values)}" for path, values in foreign.items())
        return Plan(blocked=f"ListenAddress values add up across sshd_config files, so these cannot be overridden: "
                    f"{shown}; change them there")
    content = "# hardnir sshd-socket: listen only on the policy addresses (sorts before 40-disable-passwords.conf)\n"
    content += "".join(f"ListenAddress {a}\n" for a in allowed)
    steps = write_if_changed(facts, DROPIN, content, validate="sshd -t -f {tmp}")
    lockout = ""
    address = str(params.get("address", ""))
    if address and not any(a.rpartition(":")[0].strip("[]") == address for a in allowed):
        lockout = f"the new listen list {', '.join(allowed)} does not include {address}, the address used now"
    return Plan(steps=tuple(steps), post=("sshd -t", "systemctl restart sshd.service"),
                rollback_post=rollback_post, lockout=lockout, deadman=True,
                note="existing SSH sessions keep running (KillMode=process)")
