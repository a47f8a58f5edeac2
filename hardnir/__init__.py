"""hardnir: audit and harden fleets of CoreOS-family hosts over SSH, in parallel, with Nornir.

The Python API for notebooks and scripts (imported lazily, so `hardnir --help` does not load pandas):
`audit`, `remediate`, `rollback` return a run's DataFrame; `load_runs` reads many runs into one DataFrame;
`drift` compares two runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["audit", "drift", "load_runs", "read_run", "remediate", "rollback"]

if TYPE_CHECKING:
    from hardnir.api import audit, remediate, rollback
    from hardnir.drift import drift
    from hardnir.store import load_runs, read_run


def __getattr__(name: str) -> Any:
    if name in ("audit", "remediate", "rollback"):
        from hardnir import api

        return getattr(api, name)
    if name == "drift":
        from hardnir.drift import drift

        return drift
    if name in ("load_runs", "read_run"):
        from hardnir import store

        return getattr(store, name)
    raise AttributeError(f"module 'hardnir' has no attribute {name!r}")
