#!/usr/bin/env bash
# scripts/services/smtp.sh - an SMTP sink for hpcgate's mail tests: aiosmtpd on
# 127.0.0.1:2525 storing every message in a Maildir.
#
# Idempotent: when the pid file names a live aiosmtpd that answers, it only
# checks and exits 0. The daemon is found through its pid file and
# /proc/PID/cmdline, never by process name. aiosmtpd is pip-installed into the
# project's .venv when missing.
#
# State lives in $HPCGATE_TEST_SMTP_DIR (/var/lib/hpcgate-test/smtp); mail in
# $HPCGATE_TEST_MAILDIR (/var/lib/hpcgate-test/maildir, with tmp/ new/ cur/:
# aiosmtpd's Mailbox handler answers "500 Error" on every DATA without them).
# After a run, `. $DIR/env` gives HPCGATE_TEST_SMTP_{HOST,PORT,MAILDIR} and
# HPCGATE_SMTP__{HOST,PORT} (the service's own settings) for the tests.
#
# Stop: kill "$(cat /var/lib/hpcgate-test/smtp/aiosmtpd.pid)"
set -euo pipefail
export PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$PATH"

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
PY="${HPCGATE_VENV_PYTHON:-$ROOT/.venv/bin/python}"
DIR="${HPCGATE_TEST_SMTP_DIR:-/var/lib/hpcgate-test/smtp}"
MAILDIR="${HPCGATE_TEST_MAILDIR:-/var/lib/hpcgate-test/maildir}"
HOST=127.0.0.1
PORT="${HPCGATE_TEST_SMTP_PORT:-2525}"
PIDFILE="$DIR/aiosmtpd.pid"
LOG="$DIR/aiosmtpd.log"

log() { printf '[smtp.sh] %s\n' "$*"; }
die() {
  log "ERROR: $*"
  [ -f "$LOG" ] && { echo "--- tail $LOG"; tail -n 15 "$LOG"; }
  exit 1
}

[ -x "$PY" ] || die "no Python at $PY (run scripts/bootstrap.sh first)"

# pid_alive: the pid file names a live (non-zombie) aiosmtpd process
pid_alive() {
  local pid
  [ -r "$PIDFILE" ] || return 1
  pid=$(tr -dc '0-9' < "$PIDFILE")
  [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 1
  [ "$(cut -d' ' -f3 "/proc/$pid/stat" 2>/dev/null)" != Z ] || return 1
  tr '\0' ' ' < "/proc/$pid/cmdline" | grep -q -- '-m aiosmtpd'
}
answers() { # the server greets with 220
  "$PY" - "$HOST" "$PORT" <<'EOF' >/dev/null 2>&1
import smtplib, sys
with smtplib.SMTP(sys.argv[1], int(sys.argv[2]), timeout=3) as s:
    code, _ = s.noop()
    sys.exit(0 if code == 250 else 1)
EOF
}
write_env() {
  cat > "$DIR/env" <<EOF
HPCGATE_TEST_SMTP_HOST=$HOST
HPCGATE_TEST_SMTP_PORT=$PORT
HPCGATE_TEST_MAILDIR=$MAILDIR
HPCGATE_SMTP__HOST=$HOST
HPCGATE_SMTP__PORT=$PORT
EOF
}

mkdir -p "$DIR" "$MAILDIR"/tmp "$MAILDIR"/new "$MAILDIR"/cur

# 1. aiosmtpd in the venv
if ! "$PY" -c 'import aiosmtpd' >/dev/null 2>&1; then
  log "installing aiosmtpd into $(dirname "$(dirname "$PY")")"
  "$PY" -m pip install -q 'aiosmtpd>=1.4' || die "pip install aiosmtpd failed"
fi

# 2. already running?
if pid_alive && answers; then
  write_env
  log "already running (pid $(cat "$PIDFILE")) on $HOST:$PORT, Maildir $MAILDIR"
  exit 0
fi
if pid_alive; then
  log "pid $(cat "$PIDFILE") does not answer; restarting it"
  kill "$(cat "$PIDFILE")" 2>/dev/null || true
  sleep 0.5
fi
rm -f "$PIDFILE"

# 3. start, detached from this shell
setsid nohup "$PY" -m aiosmtpd -n -l "$HOST:$PORT" -c aiosmtpd.handlers.Mailbox "$MAILDIR" \
  >"$LOG" 2>&1 </dev/null &
child=$!
echo "$child" > "$PIDFILE"

# Liveness of the child itself: right after the fork it is still this bash, so the cmdline
# test of pid_alive would call a healthy start dead.
child_running() { local st; st=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1); [ -n "$st" ] && [ "$st" != Z ]; }
for _ in $(seq 1 50); do
  answers && break
  child_running "$child" || { tail -n 20 "$LOG" >&2; die "aiosmtpd exited at start"; }
  sleep 0.1
done
answers || die "aiosmtpd does not answer on $HOST:$PORT"
write_env
log "running (pid $(cat "$PIDFILE")) on $HOST:$PORT, Maildir $MAILDIR"
