#!/usr/bin/env bash
# The "cluster side" of hpcgate for tests: a virtualenv any cluster user can run
# (jobs call `hpcgate validate` / `hpcgate extract`), built with Debian's python3 so it
# does not depend on root's private interpreter. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/../.."
REPO=$(pwd)
PREFIX=${HPCGATE_CLUSTER_PREFIX:-/opt/hpcgate-cluster}
STATE=/var/lib/hpcgate-test/cluster-python
log() { printf '[cluster-python] %s\n' "$*"; }
if ! /usr/bin/python3 -c 'import venv, ensurepip' 2>/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-cache policy python3-venv 2>/dev/null | grep -q 'Candidate: [0-9]' || apt-get -o DPkg::Lock::Timeout=900 update -qq
  apt-get -o DPkg::Lock::Timeout=900 install -y -qq --no-install-recommends python3-venv >/dev/null
fi
[ -x "$PREFIX/venv/bin/python" ] || /usr/bin/python3 -m venv "$PREFIX/venv"
stamp="$PREFIX/venv/.installed-from"
want="$REPO $(sha256sum pyproject.toml | cut -c1-16)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  log "installing hpcgate (cluster side) from $REPO"
  "$PREFIX/venv/bin/python" -m pip install -q --upgrade pip
  # Only what validate/extract need on a compute node (no web service dependencies).
  "$PREFIX/venv/bin/python" -m pip install -q typer pydantic pydantic-settings pyyaml jinja2 \
      httpx paramiko sqlalchemy "sisl[analysis]>=0.20" matplotlib
  "$PREFIX/venv/bin/python" -m pip install -q --no-deps -e "$REPO"
  echo "$want" > "$stamp"
fi
chmod -R a+rX "$PREFIX"
"$PREFIX/venv/bin/hpcgate" validate --help >/dev/null
mkdir -p "$STATE"
echo "export HPCGATE_TEST_CLUSTER_HPCGATE=$PREFIX/venv/bin/hpcgate" > "$STATE/env"
log "ready: $PREFIX/venv/bin/hpcgate"
