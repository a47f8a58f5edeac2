"""`python -m hardnir.lab up|down|status`."""

from __future__ import annotations

import sys

from hardnir.lab.cli import main

raise SystemExit(main(sys.argv[1:]))
