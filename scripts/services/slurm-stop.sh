#!/usr/bin/env bash
# scripts/services/slurm-stop.sh - stop the test cluster started by slurm.sh.
#
# Every daemon is stopped by the PID in its pid file after checking that the
# PID really is that daemon (never by name). Idempotent.
#
#   slurm-stop.sh           cancel all jobs, stop slurmd, slurmctld, slurmdbd, munged
#   slurm-stop.sh --purge   also wipe Slurm state (job ids restart at 1), spool,
#                           logs and the accounting database
#   SLURM_STOP_DB=1         also stop MariaDB (left running by default because it
#                           may be shared with other services on the machine)
set -uo pipefail
export PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$PATH"

PURGE=0
[ "${1:-}" = "--purge" ] && PURGE=1
RUNDIR=/run/slurm

T0=$(date +%s.%N)
log() { printf '[slurm-stop %6ss] %s\n' "$(awk -v a="$(date +%s.%N)" -v b="$T0" 'BEGIN{printf "%.2f", a-b}')" "$*"; }
[ "$(id -u)" = 0 ] || { echo "slurm-stop.sh must run as root" >&2; exit 1; }

alive() { [ -r "/proc/$1/stat" ] && [ "$(cut -d' ' -f3 "/proc/$1/stat" 2>/dev/null)" != Z ]; }
pid_of() {  # pid_of PIDFILE NAME -> prints the pid if alive and named NAME
  local pf=$1 name=$2 pid
  [ -r "$pf" ] || return 1
  pid=$(tr -dc '0-9' < "$pf")
  [ -n "$pid" ] && [ -r "/proc/$pid/comm" ] && [ "$(cat "/proc/$pid/comm")" = "$name" ] && alive "$pid" && echo "$pid"
}
stop_daemon() {  # stop_daemon PIDFILE NAME
  local pf=$1 name=$2 pid _
  if pid=$(pid_of "$pf" "$name"); then
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 1 150); do alive "$pid" || break; sleep 0.1; done
    if alive "$pid"; then log "$name ($pid) ignored TERM, sending KILL"; kill -KILL "$pid" 2>/dev/null; fi
    log "stopped $name (pid $pid)"
  else
    log "$name not running"
  fi
  rm -f "$pf"
}

# Cancel jobs first: running jobs survive a slurmd stop (slurmstepd keeps going).
if pid_of "$RUNDIR/slurmctld.pid" slurmctld >/dev/null; then
  jobs=$(squeue -h -o '%A' 2>/dev/null | sort -u | tr '\n' ' ')
  if [ -n "${jobs// /}" ]; then
    log "cancelling jobs: $jobs"
    # shellcheck disable=SC2086
    scancel $jobs 2>/dev/null
    for _ in $(seq 1 50); do
      [ -z "$(squeue -h -t running,completing -o %A 2>/dev/null)" ] && break; sleep 0.2
    done
  fi
fi

stop_daemon "$RUNDIR/slurmd.pid" slurmd
stop_daemon "$RUNDIR/slurmctld.pid" slurmctld
stop_daemon "$RUNDIR/slurmdbd.pid" slurmdbd

if [ "$PURGE" = 1 ] && command -v mariadb >/dev/null && mariadb-admin ping >/dev/null 2>&1; then
  mariadb -e "DROP DATABASE IF EXISTS slurm_acct_db" && log "dropped slurm_acct_db"
fi
stop_daemon /run/munge/munged.pid munged
if [ "${SLURM_STOP_DB:-0}" = 1 ]; then
  stop_daemon /run/mysqld/mysqld.pid mariadbd
fi

if [ "$PURGE" = 1 ]; then
  find /var/spool/slurmctld -mindepth 1 -delete 2>/dev/null
  rm -rf /var/spool/slurmd/* /var/log/slurm/*
  log "purged Slurm state, spool and logs (munge key kept)"
fi
exit 0
