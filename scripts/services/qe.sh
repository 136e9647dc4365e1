#!/usr/bin/env bash
# Install Quantum ESPRESSO (pw.x) and its pseudopotentials from Debian, idempotently.
#
# Why: the QE validation tests run a real pw.x (H2 in a box, < 1 s) instead of
# replaying outputs captured elsewhere. Debian 12 ships QE 6.7 plus 71 UPF files in
# /usr/share/espresso/pseudo (package quantum-espresso-data).
#
# Safe to run many times: it does nothing when pw.x and the pseudo directory exist,
# runs `apt-get update` only when apt has no candidate for the packages, and waits
# for the dpkg lock (other jobs may be installing at the same time).
set -euo pipefail

PKGS=(quantum-espresso quantum-espresso-data)
PSEUDO_DIR=/usr/share/espresso/pseudo
APT_OPTS=(-o DPkg::Lock::Timeout=900)

have_qe() {
    command -v pw.x >/dev/null 2>&1 && [ -d "$PSEUDO_DIR" ]
}

if have_qe; then
    echo "qe.sh: pw.x already installed at $(command -v pw.x); pseudopotentials in $PSEUDO_DIR"
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    SUDO=sudo
else
    SUDO=
fi

needs_update=0
for p in "${PKGS[@]}"; do
    cand=$(apt-cache policy "$p" 2>/dev/null | awk '/Candidate:/ {print $2}')
    if [ -z "$cand" ] || [ "$cand" = "(none)" ]; then
        needs_update=1
    fi
done
if [ "$needs_update" -eq 1 ]; then
    echo "qe.sh: no apt candidate for ${PKGS[*]}; running apt-get update"
    $SUDO apt-get "${APT_OPTS[@]}" update
fi

echo "qe.sh: installing ${PKGS[*]}"
DEBIAN_FRONTEND=noninteractive $SUDO apt-get "${APT_OPTS[@]}" install -y --no-install-recommends "${PKGS[@]}"

if ! have_qe; then
    echo "qe.sh: pw.x or $PSEUDO_DIR still missing after install" >&2
    exit 1
fi
echo "qe.sh: pw.x installed at $(command -v pw.x)"
