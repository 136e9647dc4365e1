#!/usr/bin/env bash
# Small command-line tools the tests use: pdftotext/pdfimages (PDF report checks).
set -euo pipefail
need=()
command -v pdftotext >/dev/null 2>&1 || need+=(poppler-utils)
if [ "${#need[@]}" -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-cache policy "${need[0]}" 2>/dev/null | grep -q 'Candidate: [0-9]' || apt-get -o DPkg::Lock::Timeout=900 update -qq
  apt-get -o DPkg::Lock::Timeout=900 install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
echo "[tools] ready"
