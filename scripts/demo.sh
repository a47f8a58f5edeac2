#!/usr/bin/env bash
# The main job on a fresh machine: install, build and boot a 10-host lab, audit it, remediate it, report.
# Leaves runs/demo-audit, runs/demo-remediate and runs/demo-after with results.csv for auditors.
set -uo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh || exit 1
hn=.venv/bin/hardnir
$hn lab up --hosts "${HOSTS:-10}" --seed "${SEED:-1}" || exit 1
rm -rf runs/demo-audit runs/demo-remediate runs/demo-after
$hn audit -i inventory/lab --out runs/demo-audit
$hn remediate -i inventory/lab --out runs/demo-remediate
$hn audit -i inventory/lab --out runs/demo-after
$hn report runs/demo-audit runs/demo-after
echo
echo "CSV for auditors: runs/demo-remediate/results.csv  (lab still up: '$hn lab down' removes it)"
