#!/usr/bin/env bash
# scripts/services/ansible.sh - the Ansible controller for hpcgate's deployment tests
# (tests/integration/test_ansible_role.py): ansible-core and ansible-lint in the
# project's .venv (both are in the `dev` extra; this installs them when missing, e.g.
# on a .venv made before they were added), and the OpenSSH client Ansible drives.
#
# Idempotent: when both tools are present and recent enough it only checks and
# prints their versions. The target host of the tests is the loopback sshd of
# scripts/services/sshd.sh (with passwordless sudo) and the real Slurm of
# scripts/services/slurm.sh; this script does not start them.
#
# Tunables: ANSIBLE_SKIP_INSTALL=1 never calls pip or apt-get (only checks).
set -euo pipefail
export PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$PATH"

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
VENV="${HPCGATE_VENV:-$ROOT/.venv}"
PY="$VENV/bin/python"
SKIP_INSTALL="${ANSIBLE_SKIP_INSTALL:-0}"
# the same floors as pyproject.toml's dev extra
WANT=("ansible-core>=2.16" "ansible-lint>=24")

log() { printf '[ansible.sh] %s\n' "$*"; }
die() { log "ERROR: $*"; exit 1; }

[ -x "$PY" ] || die "no Python at $PY (run scripts/bootstrap.sh first)"

# satisfied: every requirement in WANT is installed in the venv at a good version
satisfied() {
  "$PY" - "${WANT[@]}" <<'PY'
import sys
from importlib.metadata import PackageNotFoundError, version
try:
    from packaging.requirements import Requirement
except ImportError:          # pip's vendored copy is always there
    from pip._vendor.packaging.requirements import Requirement
for spec in sys.argv[1:]:
    req = Requirement(spec)
    try:
        if not req.specifier.contains(version(req.name), prereleases=True):
            sys.exit(1)
    except PackageNotFoundError:
        sys.exit(1)
PY
}

if ! satisfied; then
  [ "$SKIP_INSTALL" = 1 ] && die "missing or too old in $VENV: ${WANT[*]}"
  log "installing into $VENV: ${WANT[*]}"
  "$PY" -m pip install -q "${WANT[@]}" || die "pip install failed"
  satisfied || die "still missing after pip install: ${WANT[*]}"
fi

# Ansible's ssh connection needs the OpenSSH client (sshd.sh installs it too).
if ! command -v ssh >/dev/null 2>&1; then
  [ "$SKIP_INSTALL" = 1 ] && die "the OpenSSH client (ssh) is missing"
  export DEBIAN_FRONTEND=noninteractive
  APT=(apt-get -o DPkg::Lock::Timeout=900)
  apt-cache policy openssh-client 2>/dev/null | grep -q 'Candidate: [0-9]' || "${APT[@]}" update -qq
  "${APT[@]}" install -y -qq --no-install-recommends openssh-client >/dev/null \
    || die "apt-get install openssh-client failed"
fi

# Smoke test: both tools start (ansible-lint is run with PATH on the venv, as the tests do).
core=$(PATH="$VENV/bin:$PATH" "$VENV/bin/ansible-playbook" --version 2>&1) \
  || die "ansible-playbook does not start: $core"
lint=$(NO_COLOR=1 PATH="$VENV/bin:$PATH" "$VENV/bin/ansible-lint" --offline --version 2>&1) \
  || die "ansible-lint does not start: $lint"
log "ready: ${core%%$'\n'*}; ${lint%%$'\n'*}"
