"""Platforms: which CoreOS-family system a host runs, and whether a control applies to it.

A host's platform comes from its os-release (`ID`, and `VARIANT_ID` for Fedora CoreOS, whose `ID` is `fedora`;
controls-spec.md 1.1). Each control declares the platforms it was written for (`ControlMeta.platforms`) and may
say why it does not apply elsewhere (`PLATFORM_NOTES` in its module, e.g. "fleet is not part of Flatcar").

- a known platform outside the control's list: `not_applicable` with that reason; never `fail`, never a fix;
- an unknown platform (or no os-release): the control is judged on the facts as usual, with a note saying so;
- every result row carries the host's platform and version in the extra columns :data:`COLUMNS`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

#: Platform id -> the name people know it by.
NAMES: Final[Mapping[str, str]] = {
    "coreos": "CoreOS Container Linux",
    "flatcar": "Flatcar Container Linux",
    "fcos": "Fedora CoreOS",
}
KNOWN: Final[tuple[str, ...]] = tuple(NAMES)
UNKNOWN: Final = "unknown"

#: The extra result columns every runbook row carries (after ``host_key``): platform id and os-release VERSION_ID.
COLUMNS: Final[tuple[str, ...]] = ("platform", "platform_version")


#: The os-release fields that make a platform, where its `ID` alone does not.
RELEASE_FIELDS: Final[Mapping[str, Mapping[str, str]]] = {"fcos": {"ID": "fedora", "VARIANT_ID": "coreos"}}


def platform_of(release: Mapping[str, str]) -> str:
    """`coreos`, `flatcar`, `fcos`, another os-release ID as is, or `unknown` when there is none."""
    for platform, fields in RELEASE_FIELDS.items():
        if all(release.get(key) == value for key, value in fields.items()):
            return platform
    return release.get("ID", "").strip() or UNKNOWN


def release_test(platform: str) -> str:
    """A POSIX-sh condition (shell builtins only, for a probe command) that holds on a host of `platform`: its
    /etc/os-release has the fields :func:`platform_of` looks for (quotes around values stripped)."""
    fields = RELEASE_FIELDS.get(platform, {"ID": platform})
    tests = " && ".join(f'case $_rel in *"${{NL}}{key}={value}$NL"*) ;; *) false ;; esac'
                        for key, value in fields.items())
    return ("{ _rel=$NL; while IFS== read -r _k _v || [ -n \"$_k\" ]; do _v=${_v#[\\\"\\']}; _v=${_v%[\\\"\\']}; "
            f'_rel="$_rel$_k=$_v$NL"; done 2>/dev/null </etc/os-release; {tests}; }}')


def name_of(platform: str) -> str:
    return NAMES.get(platform, platform)


@dataclass(frozen=True)
class Verdict:
    """How a control meets a host's platform: applies (with an optional note), or not (with the reason)."""

    applies: bool
    reason: str = ""  # why not (applies=False), or a note to append to the finding (unknown platform)


def judge(platform: str, version: str, control_id: str, platforms: Sequence[str],
          notes: Mapping[str, str]) -> Verdict:
    """Does a control written for `platforms` apply to a host of `platform`? `notes` give per-platform reasons."""
    if platform in platforms:
        return Verdict(True)
    if platform in KNOWN:
        reason = notes.get(platform) or (
            f"{control_id} does not apply to {name_of(platform)} (written for "
            f"{', '.join(name_of(p) for p in platforms)})")
        return Verdict(False, reason)
    shown = "no os-release" if platform == UNKNOWN else f"platform {platform} {version}".rstrip()
    return Verdict(True, f"note: {shown} is not one hardnir knows ({', '.join(KNOWN)}); judged on the facts only")


def columns(platform: str, version: str) -> dict[str, str]:
    """The values of :data:`COLUMNS` for one host ("" for both when the host could not be read)."""
    return dict(zip(COLUMNS, (platform, version), strict=True))


def stamp(rows: list[dict[str, object]], platform: str = "", version: str = "") -> list[dict[str, object]]:
    """Give every row of one host the platform columns (in place; returns `rows`)."""
    values = columns(platform, version)
    for row in rows:
        row.update(values)
    return rows
