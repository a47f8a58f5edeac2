"""Paths given to notebooks: relative ones are looked up from the cwd, then from the repository root."""

from __future__ import annotations

from pathlib import Path


def resolve_path(path: str | Path, start: Path | None = None) -> Path:
    """``path`` as given if absolute or existing from ``start`` (default: cwd), else under the repository root.

    The repository root is the first of ``start`` and its parents holding ``pyproject.toml`` and
    ``notebooks/``, so ``runs/demo-audit`` works both from the repository and from ``notebooks/`` (where
    Jupyter starts kernels). Without a repository root the path is returned relative to ``start``.
    """
    here = (start or Path.cwd()).resolve()
    candidate = Path(path).expanduser()
    if candidate.is_absolute():
        return candidate
    if (here / candidate).exists():
        return here / candidate
    for folder in (here, *here.parents):
        if (folder / "pyproject.toml").is_file() and (folder / "notebooks").is_dir():
            return folder / candidate
    return here / candidate
