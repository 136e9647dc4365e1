#!/usr/bin/env bash
# scripts/services/chromium.sh - Debian's Chromium (+ a font) for the portal's browser tests.
#
# Playwright drives /usr/bin/chromium through `executable_path`; `playwright install` (a
# browser download) is never used. Idempotent: installs only what is missing, runs
# `apt-get update` only when a package has no known candidate, then checks that headless
# Chromium starts (`--dump-dom` of a data: URL).
#
# Tunables: CHROMIUM_SKIP_INSTALL=1 never calls apt-get (fails if Chromium is missing).
set -euo pipefail
export PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$PATH"
export DEBIAN_FRONTEND=noninteractive
log() { printf '[chromium.sh] %s\n' "$*"; }

PACKAGES=(chromium fonts-liberation)
missing=()
for pkg in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done

if [ "${#missing[@]}" -gt 0 ]; then
  [ "${CHROMIUM_SKIP_INSTALL:-0}" = 1 ] && { log "missing: ${missing[*]} (CHROMIUM_SKIP_INSTALL=1)"; exit 1; }
  [ "$(id -u)" = 0 ] || { log "missing: ${missing[*]}; run as root to install"; exit 1; }
  for pkg in "${missing[@]}"; do
    if ! apt-cache policy "$pkg" 2>/dev/null | grep -q 'Candidate: [0-9]'; then
      log "apt-get update (no candidate for $pkg)"
      apt-get -o DPkg::Lock::Timeout=900 update -qq
      break
    fi
  done
  log "installing ${missing[*]}"
  apt-get -o DPkg::Lock::Timeout=900 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

[ -x /usr/bin/chromium ] || { log "ERROR: /usr/bin/chromium not found"; exit 1; }
out=$(timeout 60 /usr/bin/chromium --headless --no-sandbox --disable-gpu --disable-quic \
  --no-first-run --disable-background-networking --disable-component-update --disable-sync \
  --dump-dom 'data:text/html,<p id=x>chromium-ok</p>' 2>/dev/null || true)
case "$out" in
  *chromium-ok*) log "ready: $(/usr/bin/chromium --version 2>/dev/null | head -n1)" ;;
  *) log "ERROR: headless chromium did not render a page"; exit 1 ;;
esac
