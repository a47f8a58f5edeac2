#!/usr/bin/env bash
# The whole test suite: installs what is missing, then lint, types, unit, lab integration and notebook tests.
# Needs root for the lab (systemd-nspawn); the lab image is cached in /var/cache/hardnir.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
.venv/bin/ruff check .
.venv/bin/mypy
exec .venv/bin/pytest -p no:cacheprovider "$@"
