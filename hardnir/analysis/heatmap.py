"""The host x control matrix of final statuses, with the colour and label of each status."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final

import pandas as pd

from hardnir.schema import SEVERITIES

#: Colour of each final (check/verify) status in heatmaps; ``""`` is "no result for this host x control".
STATUS_COLOURS: Final[Mapping[str, str]] = {
    "pass": "#2e7d32",
    "waived": "#1565c0",
    "not_applicable": "#cfd8dc",
    "fail": "#c62828",
    "error": "#212121",
    "": "#ffffff",
}

#: Short cell labels for heatmaps (so the chart does not rely on colour alone).
STATUS_LABELS: Final[Mapping[str, str]] = {
    "pass": "ok",
    "waived": "W",
    "not_applicable": "n/a",
    "fail": "FAIL",
    "error": "ERR",
    "": "",
}


def status_matrix(
    final: pd.DataFrame,
    hosts: Sequence[str] | None = None,
    controls: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Host x control table of final statuses (text; ``""`` where there is no result) for one run.

    Rows are ``hosts`` (default: sorted host names), columns ``controls`` (default: highest severity first,
    then id). ValueError if ``final`` holds more than one run (a cell must mean one observation).
    """
    if final["run_id"].nunique() > 1:
        raise ValueError("status_matrix needs the final statuses of one run (filter on run_id first)")
    if controls is None:
        severity = final.groupby(final["control"].astype(object), observed=True)["severity"].max()
        rank = {str(c): -SEVERITIES.index(str(s)) for c, s in severity.items()}
        controls = sorted(rank, key=lambda c: (rank[c], c))
    if hosts is None:
        hosts = sorted(str(h) for h in final["host"].unique())
    table = pd.DataFrame(
        {"host": final["host"].astype(object), "control": final["control"].astype(object),
         "status": final["status"].astype(object)}
    ).pivot(index="host", columns="control", values="status")
    matrix = table.reindex(index=list(hosts), columns=list(controls)).astype(object).fillna("")
    matrix.index.name, matrix.columns.name = "host", "control"
    return matrix
