#!/usr/bin/env bash
# Install everything the test suite needs and start the real services it talks to.
# Idempotent and non-interactive; run as root on a Debian 12 machine.
set -euo pipefail
cd "$(dirname "$0")/.."
t0=$(date +%s)
scripts/bootstrap.sh dev
for svc in postgres tools slurm sshd job-accounts qe siesta cluster-python smtp docker ansible chromium web; do
  script="scripts/services/$svc.sh"
  [ -f "$script" ] || continue
  echo "== service: $svc"
  # Each script is idempotent, so one retry absorbs a transient start failure on a busy
  # VM (the failure and its log stay in the output); a second failure stops the setup.
  bash "$script" || { echo "== service $svc failed; one retry in 3 s"; sleep 3; bash "$script"; }
done
echo "== test setup done in $(( $(date +%s) - t0 ))s"
