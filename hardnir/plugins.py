"""Extension points: controls and runbooks from other installed packages, found through entry points.

`hardnir.controls`: a control id mapped to a module shaped like the modules in `tasks/` (`hardnir.control`).
`hardnir.runbooks`: a runbook name mapped to a `hardnir.runbook.Runbook`.
A plugin that cannot be loaded is a one-line usage error naming its entry point, never a traceback.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import entry_points

CONTROLS_GROUP = "hardnir.controls"
RUNBOOKS_GROUP = "hardnir.runbooks"


class PluginError(ValueError):
    """An installed plugin is broken (the message names the entry point and the distribution)."""


@dataclass(frozen=True)
class Plugin:
    name: str
    value: object
    distribution: str
    version: str

    @property
    def where(self) -> str:
        return f"entry point {self.name!r} of {self.distribution or 'an unknown package'} {self.version}".rstrip()


def load(group: str) -> list[Plugin]:
    """Every entry point of `group`, loaded, by name."""
    found: list[Plugin] = []
    for point in sorted(entry_points(group=group), key=lambda p: p.name):
        dist = point.dist
        name, version = (dist.name, dist.version) if dist is not None else ("", "")
        try:
            value = point.load()
        except Exception as exc:  # any import error in someone else's package: one line naming it
            detail = f"{exc.__class__.__name__}: {exc}".splitlines()[0]
            raise PluginError(f"{group} entry point {point.name!r} ({point.value}) of {name or 'an unknown package'}"
                              f" cannot be loaded: {detail}") from None
        found.append(Plugin(point.name, value, name, version))
    return found
