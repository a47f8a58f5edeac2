"""Display and export helpers shared by the notebooks: tables with titles, rounding, figures, JSON summaries.

IPython and matplotlib are imported only when a helper that needs them is called (``pip install
hardnir[notebooks]``), so importing :mod:`hardnir.analysis` does not need them.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Mapping
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pandas as pd


def _ipython_display() -> Any:
    """``IPython.display`` (untyped), imported when a helper shows something."""
    return importlib.import_module("IPython.display")


def show(frame: pd.DataFrame, title: str | None = None) -> None:
    """Display a table with a bold title, its first column as the row labels."""
    ipython = _ipython_display()
    if title:
        ipython.display(ipython.Markdown(f"**{title}**"))
    ipython.display(frame.set_index(frame.columns[0]) if len(frame.columns) > 1 else frame.reset_index(drop=True))


def rounded(frame: pd.DataFrame, digits: int = 1) -> pd.DataFrame:
    """``frame`` with its float columns rounded (for display; the exports keep full precision)."""
    return frame.assign(**{c: frame[c].round(digits) for c in frame.select_dtypes("float").columns})


def save_figure(fig: Any, out_dir: Path, name: str, *, display_it: bool = True) -> Path:
    """Save a matplotlib figure as PNG ``out_dir/name`` (120 dpi), close it, and show it in the notebook."""
    import matplotlib.pyplot as plt

    path = Path(out_dir) / name
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    if display_it:
        _ipython_display().display(fig)
    return path


def jsonable(value: object) -> object:
    """Plain JSON values: NaN/NA/NaT become None, numpy scalars Python numbers, dates ISO text."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    item = getattr(value, "item", None)
    if callable(item) and not isinstance(value, str | bytes):
        value = item()
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, datetime | date | pd.Timestamp):
        return value.isoformat()
    if isinstance(value, bool | int | float | str):
        return value
    return str(value)


def table_records(frame: pd.DataFrame, key: str) -> dict[str, object]:
    """A table as ``{key: {column: value}}`` with plain JSON values, for JSON summaries."""
    return {str(r[key]): {str(k): jsonable(v) for k, v in r.items() if k != key} for r in frame.to_dict("records")}
