#!/usr/bin/env bash
# Install the real SIESTA 4.1 (TranSIESTA included) and TBtrans, plus its pseudopotentials.
#
# Why: tests, the demo and the Slurm jobs they submit run the real `siesta`/`tbtrans`;
# Debian ships neither, so the serial build in ../shared/tools/siesta (beside the repo
# root; override with HPCGATE_SIESTA_TOOLS) is installed through its own install.sh.
#
# Where things land (stable paths the tests and the demo read):
#   $PREFIX/bin/siesta, $PREFIX/bin/tbtrans          (PREFIX default /usr/local)
#   $PREFIX/share/siesta/pseudos/*.psf               (H, C, N, O, Si, Fe, Au)
# After installation the repo no longer needs ../shared to run SIESTA.
#
# Idempotent: the binaries and pseudos are copied only when they differ; the runtime
# libraries are apt-installed here first with a dpkg-lock timeout (another apt may still
# be running during setup), so install.sh then finds nothing left to install.
# Without the tools folder it prints how to get them; that is an error only under CI=true.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
tools=${HPCGATE_SIESTA_TOOLS:-$root/../shared/tools/siesta}
prefix=${SIESTA_PREFIX:-/usr/local}
pseudo_dir=$prefix/share/siesta/pseudos

if [ ! -x "$tools/install.sh" ]; then
  msg="siesta.sh: no SIESTA tools folder at $tools (expected install.sh, bin/, pseudos/);"
  msg+=" put the shared/ folder beside the repo or set HPCGATE_SIESTA_TOOLS, then rerun scripts/services/siesta.sh"
  if [ "${CI:-}" = "true" ]; then echo "$msg" >&2; exit 1; fi
  echo "$msg (skipping: SIESTA tests will skip outside CI)"
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi

# Runtime libraries, waiting for the dpkg lock instead of failing on it.
need=(libgfortran5 liblapack3 libblas3 libnetcdff7)
missing=()
for p in "${need[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "siesta.sh: installing runtime libraries ${missing[*]}"
  apt_opts=(-o DPkg::Lock::Timeout=900)
  apt-cache policy "${missing[0]}" 2>/dev/null | grep -q 'Candidate: [0-9]' \
    || $SUDO apt-get "${apt_opts[@]}" update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get "${apt_opts[@]}" install -y -qq \
    --no-install-recommends "${missing[@]}" >/dev/null
fi

$SUDO bash "$tools/install.sh" "$prefix"

$SUDO install -d "$pseudo_dir"
for f in "$tools"/pseudos/*.psf; do
  dest=$pseudo_dir/$(basename "$f")
  cmp -s "$f" "$dest" 2>/dev/null || $SUDO install -m 0644 "$f" "$dest"
done

# Prove the binaries load (missing shared libraries show here, not in a Slurm job).
for b in siesta tbtrans; do
  ldd "$prefix/bin/$b" | grep -q 'not found' && { echo "siesta.sh: $b misses libraries:" >&2; ldd "$prefix/bin/$b" | grep 'not found' >&2; exit 1; }
done
echo "siesta.sh: siesta and tbtrans in $prefix/bin; pseudopotentials in $pseudo_dir"
