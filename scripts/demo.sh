#!/usr/bin/env bash
# The main job on a fresh machine: install, build and boot a 10-host lab, audit it, remediate it, report.
# Leaves runs/demo-audit, runs/demo-remediate and runs/demo-after with results.csv for auditors.
# apt, debootstrap and pip write to a log under runs/ (its path is printed); the screen shows a short list of
# steps, then hardnir's own output. When a step fails: the last 30 lines of the log, and its path.
set -uo pipefail
cd "$(dirname "$0")/.."
mkdir -p runs
log="runs/demo-$(date -u +%Y%m%dT%H%M%SZ).log"
: >"$log"
echo "hardnir demo (setup output: $log)"

# step LABEL COMMAND...: run COMMAND with its output in the log, show the seconds while it runs, then ok or the
# end of the log.
step() {
    local label=$1 started=$SECONDS pid rc
    shift
    printf '==== %s: %s\n' "$label" "$*" >>"$log"
    "$@" >>"$log" 2>&1 &
    pid=$!
    if [ -t 1 ]; then
        while kill -0 "$pid" 2>/dev/null; do
            printf '\r  %s... %ds' "$label" $((SECONDS - started))
            sleep 0.5
        done
    fi
    wait "$pid"
    rc=$?
    if [ "$rc" -eq 0 ]; then
        printf '\r  %s... ok (%ds)\n' "$label" $((SECONDS - started))
        return 0
    fi
    printf '\r  %s... failed (exit %d)\n' "$label" "$rc"
    echo "---- last 30 lines of $log:"
    tail -n 30 "$log"
    echo "---- full log: $log"
    exit 1
}

hn=.venv/bin/hardnir
hosts=${HOSTS:-10}
if [ "$(id -u)" = 0 ]; then
    step "installing system packages (apt)" scripts/setup-host.sh
fi
step "installing hardnir into .venv (pip)" scripts/bootstrap.sh
if .venv/bin/python -c 'import sys; from hardnir.lab.image import image_dir; sys.exit(not (image_dir() / "rootfs").is_dir())'
then
    echo "  lab image... cached"
else
    step "building the lab image (first time only, about 1 min)" \
        .venv/bin/python -c 'from hardnir.lab.image import ensure_image; ensure_image()'
fi
# One lab per machine: wait while tests or benchmarks use it.
exec 9>/var/lock/hardnir-lab.lock
flock -n 9 || { echo "  waiting for the lab (tests or benchmarks are using it)..."; flock 9; }
step "booting $hosts hosts (platform ${PLATFORM:-mixed})" \
    $hn lab up --hosts "$hosts" --seed "${SEED:-1}" --platform "${PLATFORM:-mixed}"
rm -rf runs/demo-audit runs/demo-remediate runs/demo-after

echo
echo "== hardnir audit: read-only check of every control on $hosts hosts"
$hn audit -i inventory/lab --out runs/demo-audit
echo
echo "== hardnir remediate: check, fix and re-check"
$hn remediate -i inventory/lab --out runs/demo-remediate
echo
echo "== hardnir audit again"
$hn audit -i inventory/lab --out runs/demo-after
echo
echo "== hardnir report: what changed"
$hn report runs/demo-audit runs/demo-after
echo
echo "CSV for auditors: runs/demo-remediate/results.csv  (lab still up: '$hn lab down' removes it)"
