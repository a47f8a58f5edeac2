#!/usr/bin/env bash
# Install everything hardnir needs on a fresh Debian 12 machine: apt packages for the lab, then the venv.
# Idempotent and quick when everything is already there.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" = 0 ] && [ -x scripts/setup-host.sh ]; then
  scripts/setup-host.sh
fi
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
stamp=.venv/.hardnir-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -e '.[dev]'
  touch "$stamp"
fi
# The editable install leaves our own modules uncompiled, and a shell with PYTHONDONTWRITEBYTECODE=1 would then
# compile about 100 of them on every run (0.35 s of CPU per command); compileall only redoes changed files.
.venv/bin/python -m compileall -q hardnir tasks runbooks >/dev/null
