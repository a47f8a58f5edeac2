"""Report formats over one run: ``table`` (terminal), ``junit``, ``sarif``, ``json`` and ``html``.

Each format is one module with a ``render_*(report) -> str`` function over a
:class:`hardnir.reporters.model.RunReport` (:func:`hardnir.reporters.model.load_report` reads one from a run
directory); :mod:`hardnir.reporters.output` picks by name and writes ``--report FORMAT[:FILE]`` outputs;
:mod:`hardnir.reporters.commands` is what the command line calls. This package itself imports nothing heavy, so
the command line can read :data:`FORMATS` without loading pandas.
"""

from __future__ import annotations

from hardnir.reporters.formats import DEFAULT_FILES, FORMATS, ReportSpecError, parse_spec

__all__ = ["DEFAULT_FILES", "FORMATS", "ReportSpecError", "parse_spec"]
