#!/usr/bin/env bash
# scripts/services/sshd-stop.sh - stop the test sshd started by sshd.sh.
# Only the daemon named in the pid file (checked through /proc/PID/comm) is
# signalled; open sessions end on their own. The env file is removed (tests skip
# without it); keys, user and config are kept so the next sshd.sh run is fast.
# Idempotent: exits 0 when nothing runs.
set -euo pipefail
DIR="${HPCGATE_TEST_SSHD_DIR:-/var/lib/hpcgate-test/sshd}"
PF="$DIR/sshd.pid"

[ "$(id -u)" = 0 ] || { echo "sshd-stop.sh must run as root" >&2; exit 1; }
alive() { [ -r "/proc/$1/stat" ] && [ "$(cut -d' ' -f3 "/proc/$1/stat" 2>/dev/null)" != Z ]; }

pid=""
[ -r "$PF" ] && pid=$(tr -dc '0-9' < "$PF")
if [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = sshd ] && alive "$pid"; then
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 100); do alive "$pid" || break; sleep 0.1; done
  alive "$pid" && kill -KILL "$pid" 2>/dev/null || true
  echo "[sshd-stop.sh] stopped sshd (pid $pid)"
else
  echo "[sshd-stop.sh] sshd not running"
fi
# the env file announces a running sshd: tests skip without it
rm -f "$PF" "$DIR/env"
