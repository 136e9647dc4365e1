#!/usr/bin/env bash
# Build the web portal (web/ -> web/dist), which `hpcgate serve` / `hpcgate demo` serve at /.
#
# Idempotent and quick when nothing changed:
#   - `npm ci` only when web/node_modules is missing or older than package-lock.json;
#   - the build is skipped when a hash of the sources (src/, index.html, configs, lock file)
#     equals the one stored in web/dist/.build-hash by the last successful build.
# The typed API client (web/src/api/schema.d.ts) is committed; regenerate it with
# web/scripts/gen-api.sh after changing the API.
#
# Without Node.js >= 20.19 the portal cannot be built: by default this warns and exits 0 (the
# API still runs and / explains how to build); HPCGATE_WEB_REQUIRED=1 makes it an error.
# HPCGATE_WEB_FORCE=1 rebuilds even when the sources did not change.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
WEB="$ROOT/web"
DIST="$WEB/dist"
log() { printf '[build-web] %s\n' "$*"; }
fail() {
  if [ "${HPCGATE_WEB_REQUIRED:-0}" = 1 ]; then log "ERROR: $*"; exit 1; fi
  log "WARNING: $* — the portal is not built; the API runs without it"; exit 0
}

command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 \
  || fail "node and npm are needed (Node.js >= 20.19)"
node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a===20&&b>=19)?0:1)' \
  || fail "Node.js $(node --version) is too old (need >= 20.19)"

cd "$WEB"
sources_hash() {
  {
    find src -type f -print0 | sort -z | xargs -0 sha256sum
    sha256sum index.html package.json package-lock.json tsconfig.json vite.config.ts
  } | sha256sum | cut -d' ' -f1
}

# Dependencies: the lock file is the truth (`npm ci`); npm records what it installed in
# node_modules/.package-lock.json, newer than package-lock.json after a good install.
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  log "npm ci"
  # vite 8.4 lists a Windows-only optional package that the registry reachable here does not
  # serve, and `npm ci` refuses a lock without it; `npm install` keeps the locked versions
  # and skips the missing optional package.
  if ! npm ci --no-audit --no-fund --loglevel=error 2>/dev/null; then
    log "npm ci refused the lock (missing optional platform package); using npm install"
    npm install --no-audit --no-fund --loglevel=error || fail "npm install failed"
  fi
  touch node_modules/.package-lock.json
fi

hash=$(sources_hash)
if [ "${HPCGATE_WEB_FORCE:-0}" != 1 ] && [ -f "$DIST/index.html" ] \
   && [ "$(cat "$DIST/.build-hash" 2>/dev/null)" = "$hash" ]; then
  log "up to date ($DIST)"
  exit 0
fi

log "building"
t0=$(date +%s)
npm run --silent build || fail "npm run build failed"
echo "$hash" > "$DIST/.build-hash"
log "built in $(( $(date +%s) - t0 ))s -> $DIST"
