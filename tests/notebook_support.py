"""Shared by the notebook tests: execute a notebook with injected parameters and compare its outputs."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, cast

import nbformat
import pandas as pd
import pytest
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

read_nb = cast(Callable[..., nbformat.NotebookNode], nbformat.read)
write_nb = cast(Callable[..., None], nbformat.write)
new_code_cell = cast(Callable[[str], nbformat.NotebookNode], nbformat.v4.new_code_cell)


def run_notebook(name: str, params: Mapping[str, object], cwd: Path) -> nbformat.NotebookNode:
    """Execute ``notebooks/<name>`` with ``params`` injected after its ``parameters`` cell, in ``cwd``."""
    nb = read_nb(NOTEBOOKS / name, as_version=4)
    cell = new_code_cell("# injected by the test\n" + "\n".join(f"{k} = {v!r}" for k, v in params.items()))
    cell.metadata["tags"] = ["injected-parameters"]
    index = next(i for i, c in enumerate(nb.cells) if "parameters" in c.get("metadata", {}).get("tags", []))
    nb.cells.insert(index + 1, cell)
    client = NotebookClient(nb, kernel_name="python3", timeout=600, resources={"metadata": {"path": str(cwd)}})
    client.execute(env=dict(os.environ, MPLBACKEND="Agg"))
    write_nb(nb, cwd / f"executed-{name}")
    return nb


def summary_of(out: Path) -> dict[str, Any]:
    data = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def pct(value: float | None) -> float:
    """A percentage from the JSON summary (null when nothing applied) as a float (NaN)."""
    return float("nan") if value is None else float(value)


def assert_png(path: Path) -> None:
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC, f"{path} is not a PNG"
    assert len(data) > 5000, f"{path} is suspiciously small ({len(data)} bytes)"


def records(frame: pd.DataFrame, key: str) -> dict[str, dict[str, Any]]:
    """A compliance table as {key: {column: value}} with plain values (NaN as None, severity as text)."""
    out: dict[str, dict[str, Any]] = {}
    for row in frame.to_dict("records"):
        out[str(row[key])] = {
            str(k): (None if isinstance(v, float) and v != v else (str(v) if k == "severity" else v))
            for k, v in row.items()
            if k != key
        }
    return out


def assert_same_table(got: dict[str, dict[str, Any]], expected: dict[str, dict[str, Any]]) -> None:
    assert got.keys() == expected.keys()
    for key, row in expected.items():
        assert got[key].keys() == row.keys(), key
        for col, value in row.items():
            if isinstance(value, float):
                assert got[key][col] == pytest.approx(value), (key, col)
            else:
                assert got[key][col] == value, (key, col)
