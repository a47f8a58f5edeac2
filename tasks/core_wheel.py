"""core-wheel: `core` holds no sudo rights, through wheel or a per-user rule (guide: Local Users).

The guide says `gpasswd -d core wheel`. On Container Linux and Flatcar that does not work: wheel also comes from
the read-only group database, and core's passwordless sudo comes from `core ALL=(ALL) NOPASSWD: ALL` in the
read-only `/usr/share/baselayout/sudoers` (named in /etc/sudo.conf), not from wheel. The check therefore judges
the effective sudo policy: can core run sudo without a password (`sudo -u core sudo -n true`), and does core have
a usable password for a password rule? Wheel membership is reported as evidence.
Fix: `/etc/sudoers.d/90-hardnir-core` with `core ALL=(ALL) !ALL` (sudo applies the last matching rule and the
includedir comes last), validated with `visudo -cf` before it is moved in; plus `gpasswd -d core wheel/sudo` on
the /etc/group copy. If the tool itself logs in as core, this removes its own root: blocked unless a verified
fallback admin path exists or --allow-lockout is given. Rollback removes the file and re-adds the memberships.
Fedora CoreOS: core's passwordless sudo comes from `%sudo ALL=(ALL) NOPASSWD: ALL` in
`/etc/sudoers.d/coreos-sudo-group` (coreos/fedora-coreos-config `overlay.d/05core`), and wheel asks for a password.
That file sorts after `90-hardnir-core`, so there the fix works by `gpasswd -d core sudo` (FCOS keeps wheel and
sudo in /etc/group: `etc-group-members` in manifests/fedora-coreos-base.yaml), which the same plan does.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from typing import Any

from hardnir import accounts, filesafe
from hardnir.control import ControlMeta, Finding, Plan, Step, not_applicable, write_if_changed
from hardnir.facts import Facts
from hardnir.params import Param
from hardnir.probe import command_item, file_item

META = ControlMeta(
    id="core-wheel",
    title="core holds no sudo rights (wheel or per-user rule)",
    section="Local Users",
    severity="high",
    disruption="medium",
    platforms=("coreos", "flatcar", "fcos"),
    rationale="core is the account every administrator's key lands in; passwordless sudo turns any stolen key "
    "into root on the host.",
    remediation="`/etc/sudoers.d/90-hardnir-core` (`core ALL=(ALL) !ALL`, checked by visudo) and `gpasswd -d "
    "core wheel` on the /etc/group copy; lockout-guarded",
    references=(
        "CoreOS Hardening Guide: Local Services / Local Users",
    ),
    version="1",
    order=80,
    lockout_risk=True,
)

RULES = {"deny": "ALL=(ALL) !ALL", "password": "ALL=(ALL) ALL"}
PARAMS = (
    Param("user", "user", "core", "the user who must hold no sudo rights"),
    Param("rule", "choice", "deny", "deny: no sudo at all; password: sudo only with the user's password",
          choices=tuple(RULES)),
)
DROPIN = "/etc/sudoers.d/90-hardnir-core"
FCOS_SUDO_GROUP = "/etc/sudoers.d/coreos-sudo-group"  # Fedora CoreOS: %sudo ALL=(ALL) NOPASSWD: ALL
SHAPES = {DROPIN: filesafe.LinesShape(r"[a-z_][a-z0-9_-]* ALL=\(ALL\) !?ALL")}


def _user(params: Mapping[str, Any]) -> str:
    return str(params["user"])


def probe_items(params: Mapping[str, Any]) -> list[tuple[str, str]]:
    user = shlex.quote(_user(params))
    return [
        *accounts.user_items(_user(params)),
        command_item(f"sudo-l-{_user(params)}", f"sudo -n -l -U {user}"),
        # Can the user run sudo with no password? Run it as that user (one setpriv, not a second sudo).
        command_item(f"sudo-nopasswd-{_user(params)}", f"_gid {user} && setpriv --reuid={user} "
                     f"--regid=\"$_g\" --init-groups -- sudo -n true"),
        # The first character of the password field: `*`, `!` or empty mean no usable password.
        command_item(f"password-{_user(params)}", _password_field(user)),
        command_item("sudo-conf", "_grep - '*sudoers_file*' -- /etc/sudo.conf", quick=True),
        file_item(DROPIN),
        file_item(FCOS_SUDO_GROUP),
    ]


def _password_field(user: str) -> str:
    """The first character of `getent shadow USER`'s password field. When nsswitch.conf names `files` first for
    shadow, the first `USER:` line of /etc/shadow is what getent returns, read with shell builtins; otherwise (or
    when /etc/shadow has no such line) getent itself runs."""
    return ("e=; while IFS= read -r l; do case $l in shadow:*) l=${l#shadow:}; l=${l#\"${l%%[![:space:]]*}\"}; "
            "case $l in files|files[[:space:]]*) while IFS= read -r s; do "
            f"case $s in {user}:*) e=$s; break ;; esac; done 2>/dev/null </etc/shadow ;; esac; break ;; esac; "
            f"done 2>/dev/null </etc/nsswitch.conf; [ -n \"$e\" ] || e=$(getent shadow {user}) && e=${{e#*:}} && "
            "printf '%.1s\\n' \"$e\"")


def via_sudo_group_file(facts: Facts, groups: list[str]) -> str:
    """' through %sudo in /etc/sudoers.d/coreos-sudo-group' when that Fedora CoreOS rule grants the sudo."""
    rule = facts.file(FCOS_SUDO_GROUP)
    granted = rule.kind == "file" and "%sudo" in (rule.content or "") and "NOPASSWD" in (rule.content or "")
    return f" through %sudo in {FCOS_SUDO_GROUP}" if granted and "sudo" in groups else ""


def sudo_rules(facts: Facts, user: str) -> list[str]:
    text = facts.text(f"cmd:sudo-l-{user}")
    _, _, tail = text.partition("may run the following commands")
    return [line.strip() for line in tail.splitlines()[1:] if line.strip().startswith("(")]


def check(facts: Facts, params: Mapping[str, Any]) -> Finding:
    user = _user(params)
    expected = f"{user} cannot use sudo"
    if not accounts.user_exists(facts, user):
        return not_applicable(expected, f"no user {user}")
    groups = accounts.effective_groups(facts, user)
    rules = sudo_rules(facts, user)
    nopasswd = facts.rc(f"cmd:sudo-nopasswd-{user}") == 0
    usable_password = facts.text(f"cmd:password-{user}").strip() not in ("", "*", "!")
    admin_groups = [g for g in ("wheel", "sudo") if g in groups]
    evidence = {
        "id -nG": groups,
        "sudo -l": rules,
        "passwordless sudo": nopasswd,
        "usable password": usable_password,
        "wheel listed in": accounts.listed_in(facts, user, "wheel"),
        "sudoers_file": facts.text("cmd:sudo-conf").strip(),
    }
    member = f"; in {', '.join(admin_groups)}" if admin_groups else ""
    last_denies = bool(rules) and rules[-1].endswith("!ALL")
    if nopasswd:
        return Finding("fail", expected, f"passwordless sudo{member}",
                       f"{user} can run any command as root without a password{via_sudo_group_file(facts, groups)}",
                       evidence)
    if usable_password and rules and not last_denies:
        return Finding("fail", expected, f"sudo with password{member}",
                       f"{user} has a password and a sudo rule ({rules[-1]})", evidence)
    note = ""
    readonly = accounts.read_only_sources(facts, user, "wheel")
    if admin_groups:
        note = (f"; still in {', '.join(admin_groups)}"
                + (f" via {', '.join(readonly)} (read-only, cannot be removed)" if readonly else "")
                + " but sudo is denied")
    return Finding("pass", expected, "no usable sudo" + member, f"{user} cannot use sudo{note}", evidence)


def plan_fix(facts: Facts, params: Mapping[str, Any]) -> Plan:
    if check(facts, params).status != "fail":
        return Plan()
    user = _user(params)
    if not accounts.user_exists(facts, user):
        return Plan()
    rule = f"{filesafe.config_word(user, 'sudoers')} {RULES[str(params['rule'])]}\n"
    steps: list[Step] = write_if_changed(facts, DROPIN, rule, mode="0440", validate="visudo -cf {tmp} >/dev/null")
    for group in ("wheel", "sudo"):
        steps += accounts.remove_from_etc_group(facts, user, group)
    lockout = ""
    if facts.login_user == user:
        lockout = f"the tool logs in as {user}; removing {user}'s sudo removes the tool's own root access"
    return Plan(steps=tuple(steps), lockout=lockout,
                note=f"effective for new logins; running {user} sessions keep their groups")
