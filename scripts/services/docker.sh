#!/usr/bin/env bash
# scripts/services/docker.sh - a real Docker Engine for the ML-API tests, plus the images
# they run, built WITHOUT any registry.
#
#   1. installs docker.io (Debian's Docker Engine), busybox-static and curl when missing
#      (a temporary policy-rc.d keeps the package from starting a daemon of its own);
#   2. starts dockerd with its default settings (overlay2, docker0 bridge, port publish) on
#      its own socket, data root and exec root, unless the pid file names a live dockerd
#      that answers /_ping; found through the pid file and /proc/PID/cmdline only;
#   3. builds the example model image (ml/example_model/build_image.sh: `docker import` of
#      a root filesystem made from the host's Python) and a tiny "broken contract" image
#      (same filesystem, but it serves plain files on port 9000: no /ping, wrong port);
#   4. writes $DIR/env for the tests.
#
# Idempotent: a second run only checks (about a second). Run as root.
#
# Settings (environment):
#   HPCGATE_TEST_DOCKER_DIR   state: pid file, log, env        (/var/lib/hpcgate-test/docker)
#   HPCGATE_DOCKER_DATA_ROOT  images and containers            (/var/lib/hpcgate-docker)
#   HPCGATE_DOCKER_SOCK       API socket                       (/run/hpcgate-docker/docker.sock)
#   APT_LOCK_TIMEOUT          seconds to wait for another apt  (900)
#
# Afterwards `. /var/lib/hpcgate-test/docker/env` gives DOCKER_HOST, HPCGATE_ML__DOCKER_HOST,
# HPCGATE_TEST_ML_IMAGE and HPCGATE_TEST_ML_BROKEN_IMAGE.
#
# Stop: kill "$(cat /var/lib/hpcgate-test/docker/dockerd.pid)"
set -euo pipefail
export PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$PATH"

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
DIR="${HPCGATE_TEST_DOCKER_DIR:-/var/lib/hpcgate-test/docker}"
DATA_ROOT="${HPCGATE_DOCKER_DATA_ROOT:-/var/lib/hpcgate-docker}"
SOCK="${HPCGATE_DOCKER_SOCK:-/run/hpcgate-docker/docker.sock}"
EXEC_ROOT="$(dirname "$SOCK")/exec"
PIDFILE="$DIR/dockerd.pid"
LOG="$DIR/dockerd.log"
APT_LOCK_TIMEOUT="${APT_LOCK_TIMEOUT:-900}"
MODEL_IMAGE="${HPCGATE_TEST_ML_IMAGE:-localhost/hpcgate-example-model:latest}"
BROKEN_IMAGE="${HPCGATE_TEST_ML_BROKEN_IMAGE:-localhost/hpcgate-broken-model:latest}"

log() { printf '[docker.sh] %s\n' "$*"; }
die() { log "ERROR: $*"; exit 1; }
die_dockerd() {  # with the daemon's own words
  log "ERROR: $*"
  [ -f "$LOG" ] && { echo "--- tail $LOG"; tail -n 20 "$LOG"; }
  exit 1
}
[ "$(id -u)" = 0 ] || die "run as root (dockerd needs it)"
mkdir -p "$DIR" "$DATA_ROOT" "$(dirname "$SOCK")"
export DEBIAN_FRONTEND=noninteractive

# ------------------------------------------------------------------ 1. packages
pkg_installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
apt_get() {  # retried while another apt/dpkg holds the lock
  local end=$(( $(date +%s) + APT_LOCK_TIMEOUT )) out rc
  while :; do
    set +e
    out=$(apt-get -o DPkg::Lock::Timeout="$APT_LOCK_TIMEOUT" -o Dpkg::Options::=--force-confdef \
          -o Dpkg::Options::=--force-confold "$@" 2>&1); rc=$?
    set -e
    [ $rc -eq 0 ] && return 0
    if grep -qiE 'could not get lock|unable to acquire|another process' <<<"$out" \
       && [ "$(date +%s)" -lt "$end" ]; then sleep 5; continue; fi
    printf '%s\n' "$out" | tail -20 >&2
    return $rc
  done
}
missing=()
for p in docker.io busybox-static curl; do pkg_installed "$p" || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]}"
  tmp_policy=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then  # keep the package from starting a dockerd
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d
    tmp_policy=1; trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  if ! apt_get install -y --no-install-recommends "${missing[@]}" >/dev/null; then
    apt_get update >/dev/null
    apt_get install -y --no-install-recommends "${missing[@]}" >/dev/null
  fi
  if [ -n "$tmp_policy" ]; then rm -f /usr/sbin/policy-rc.d; trap - EXIT; fi
fi
command -v dockerd >/dev/null || die "dockerd missing after installing docker.io"
# Debian's client, matched to the daemon (another client may sit first on PATH).
DOCKER=/usr/bin/docker
[ -x "$DOCKER" ] || DOCKER=$(command -v docker)

# ------------------------------------------------------------------ 2. dockerd
export DOCKER_HOST="unix://$SOCK"
# child_running PID: our just-spawned child is alive. Unlike pid_alive it does not read the
# cmdline: right after the fork the child is still this bash, not yet dockerd.
child_running() { local st; st=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1); [ -n "$st" ] && [ "$st" != Z ]; }
sock_ok() { [ -S "$SOCK" ] && curl -sf -m 3 --unix-socket "$SOCK" http://localhost/_ping >/dev/null 2>&1; }
pid_alive() {
  local pid
  [ -r "$PIDFILE" ] || return 1
  pid=$(tr -dc '0-9' <"$PIDFILE")
  [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 1
  [ "$(cut -d' ' -f3 "/proc/$pid/stat" 2>/dev/null)" != Z ] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "dockerd.*--host unix://$SOCK"
}

if pid_alive && sock_ok; then
  log "dockerd already running (pid $(cat "$PIDFILE")) on $SOCK"
else
  if pid_alive; then
    log "dockerd pid $(cat "$PIDFILE") does not answer; stopping it"
    kill "$(cat "$PIDFILE")" 2>/dev/null || true
    for _ in $(seq 1 80); do pid_alive || break; sleep 0.25; done
  fi
  sock_ok && die "something else serves $SOCK (not started by this script); stop it or set HPCGATE_DOCKER_SOCK"
  rm -f "$SOCK" "$PIDFILE" "$DIR/dockerd.own.pid"  # a killed dockerd leaves its pid file
  # a dockerd killed hard leaves its netns bind mount behind; it blocks the next start
  if mountpoint -q "$EXEC_ROOT/netns/default" 2>/dev/null; then umount "$EXEC_ROOT/netns/default" || true; fi
  mkdir -p "$EXEC_ROOT"
  # Default settings (overlay2, docker0, iptables): what docker-py is written against.
  setsid nohup dockerd --host "unix://$SOCK" --pidfile "$DIR/dockerd.own.pid" \
    --data-root "$DATA_ROOT" --exec-root "$EXEC_ROOT" >"$LOG" 2>&1 </dev/null &
  child=$!
  echo "$child" >"$PIDFILE"
  for _ in $(seq 1 120); do
    sock_ok && break
    child_running "$child" || die_dockerd "dockerd exited at start"
    sleep 0.25
  done
  sock_ok || die_dockerd "dockerd does not answer on $SOCK"
  log "dockerd running (pid $(cat "$PIDFILE")) on $SOCK, data root $DATA_ROOT"
fi

# ------------------------------------------------------------------ 3. images
DOCKER="$DOCKER" IMAGE="$MODEL_IMAGE" bash "$ROOT/ml/example_model/build_image.sh" \
  || die "building $MODEL_IMAGE failed"

# The broken image: the example filesystem, but `python3 -m http.server 9000` - it answers
# neither GET /ping nor port 8080. Rebuilt whenever the example image changes.
model_id=$("$DOCKER" image inspect -f '{{.Id}}' "$MODEL_IMAGE")
have=$("$DOCKER" image inspect -f '{{index .Config.Labels "org.hpcgate.derived-from"}}' \
       "$BROKEN_IMAGE" 2>/dev/null || true)
if [ "$have" != "$model_id" ]; then
  cid=$("$DOCKER" create "$MODEL_IMAGE")
  "$DOCKER" commit \
    --change 'CMD ["/usr/bin/python3", "-m", "http.server", "9000"]' \
    --change 'EXPOSE 9000' \
    --change "LABEL org.hpcgate.derived-from=$model_id" \
    --change 'LABEL org.hpcgate.model.contract=broken' \
    "$cid" "$BROKEN_IMAGE" >/dev/null
  "$DOCKER" rm "$cid" >/dev/null
  log "built $BROKEN_IMAGE (serves port 9000, no /ping)"
else
  log "image $BROKEN_IMAGE up to date"
fi

# ------------------------------------------------------------------ 4. env
cat >"$DIR/env" <<EOF
DOCKER_HOST=unix://$SOCK
HPCGATE_ML__DOCKER_HOST=unix://$SOCK
HPCGATE_TEST_ML_IMAGE=$MODEL_IMAGE
HPCGATE_TEST_ML_BROKEN_IMAGE=$BROKEN_IMAGE
EOF
log "ready: . $DIR/env"
