"""The report format names and their default file names (no pandas: the command line imports this)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Final

FORMATS: Final[tuple[str, ...]] = ("table", "junit", "sarif", "json", "html")
#: File name of each format when ``--report FORMAT`` names no file (written into the run directory).
DEFAULT_FILES: Final[Mapping[str, str]] = {
    "table": "report.txt",
    "junit": "report.junit.xml",
    "sarif": "report.sarif",
    "json": "report.json",
    "html": "report.html",
}


class ReportSpecError(ValueError):
    """A ``--report`` value names no known format (one-line message)."""


def parse_spec(spec: str) -> tuple[str, Path | None]:
    """``FORMAT[:FILE]`` as (format, file or None); ReportSpecError for an unknown format or an empty file."""
    name, sep, file = spec.partition(":")
    if name not in FORMATS:
        raise ReportSpecError(f"unknown report format {name!r} (one of: {', '.join(FORMATS)})")
    if sep and not file:
        raise ReportSpecError(f"--report {spec!r}: empty file name after ':'")
    return name, Path(file) if file else None
