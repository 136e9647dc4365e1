#!/usr/bin/env bash
# The one test command: set up everything, then lint, type-check and run the whole suite.
set -uo pipefail
cd "$(dirname "$0")/.."
scripts/test-setup.sh || { echo "test setup failed" >&2; exit 1; }
mkdir -p test-artifacts
status=0
echo "== ruff"; .venv/bin/ruff check . || status=1
echo "== mypy"; .venv/bin/mypy hpcgate scheduler_adapters analyses ml || status=1
echo "== pytest"
.venv/bin/pytest -p no:cacheprovider "$@"
rc=$?
# pytest exit 5 = no tests collected: a configuration problem, never a pass.
if [ "$rc" -eq 5 ]; then echo "pytest collected no tests" >&2; rc=1; fi
[ "$rc" -eq 0 ] || status=$rc
exit "$status"
