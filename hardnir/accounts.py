"""Shared facts about users and groups: effective membership (all group databases) versus `/etc/group`.

On Container Linux and Flatcar, `core`'s wheel and docker memberships also come from the read-only
`/usr/share/baselayout/group` (nss-altfiles; the lab uses libnss-extrausers). glibc's initgroups merges every
database, so `gpasswd -d` edits only the `/etc/group` copy and `id -nG` keeps the group. Membership is therefore
judged from `id -nG` and the fixes act where it takes effect (sudoers, socket ownership, sysusers).
"""

from __future__ import annotations

import shlex

from hardnir.control import Exec
from hardnir.facts import Facts
from hardnir.probe import command_item, user_item

ETC_GROUP = "/etc/group"
READ_ONLY_GROUP_DBS = ("/usr/share/baselayout/group", "/var/lib/extrausers/group")


def user_items(user: str) -> list[tuple[str, str]]:
    q = shlex.quote(user)
    dbs = " ".join((ETC_GROUP, *READ_ONLY_GROUP_DBS))
    groups = " ".join(f"'{g}:*'" for g in ("wheel", "docker", "rkt", "sudo", "fleet"))
    return [
        user_item(user),
        command_item(f"id-{user}", f"_groups {q}", quick=True),  # `id -nG USER`, from the user item's `id` call
        command_item("group-dbs", f"_grep -H {groups} -- {dbs} 2>/dev/null; true", quick=True),
        command_item("getent-rkt", "_getent group rkt", quick=True),  # getent's answer, mostly without getent
    ]


def user_exists(facts: Facts, user: str) -> bool:
    return facts.rc(f"cmd:id-{user}") == 0


def effective_groups(facts: Facts, user: str) -> list[str]:
    return facts.text(f"cmd:id-{user}").split() if user_exists(facts, user) else []


def listed_in(facts: Facts, user: str, group: str) -> list[str]:
    """The group files whose `group` line lists `user` as a member."""
    where = []
    for line in facts.text("cmd:group-dbs").splitlines():
        path, _, entry = line.partition(":")
        fields = entry.split(":")
        if len(fields) >= 4 and fields[0] == group and user in fields[3].split(","):
            where.append(path)
    return where


def remove_from_etc_group(facts: Facts, user: str, group: str) -> list[Exec]:
    """`gpasswd -d` only when `/etc/group` lists the user (gpasswd fails otherwise); undone by `gpasswd -a`."""
    if ETC_GROUP not in listed_in(facts, user, group):
        return []
    u, g = shlex.quote(user), shlex.quote(group)
    return [
        Exec(
            command=f"gpasswd -d {u} {g} >/dev/null",
            undo=f"gpasswd -a {u} {g} >/dev/null",
            why=f"remove {user} from {group} in /etc/group (the copy gpasswd can edit)",
        )
    ]


def read_only_sources(facts: Facts, user: str, group: str) -> list[str]:
    return [p for p in listed_in(facts, user, group) if p != ETC_GROUP]
