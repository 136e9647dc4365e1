#!/usr/bin/env bash
# scripts/services/web.sh - build the web portal for the end-to-end tests (tests/e2e/).
# The tests need the build, so a missing Node.js is an error here (not a warning).
set -euo pipefail
HPCGATE_WEB_REQUIRED=1 exec "$(cd "$(dirname "$0")/../.." && pwd)/scripts/build-web.sh"
