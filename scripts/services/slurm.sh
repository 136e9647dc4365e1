#!/usr/bin/env bash
# scripts/services/slurm.sh - install, configure and start a single-node Slurm
# test cluster for hpcgate: munged + MariaDB + slurmdbd + slurmctld + slurmd,
# plus the PBS/Torque command wrappers (slurm-wlm-torque: qsub, qstat, ...).
#
# Target: Debian 12 (bookworm, Slurm 22.05.8), root, no systemd, non-interactive.
# Adapted from the feasibility recipe in /work/shared/notes/recipes/slurm-start.sh
# (see docs/scheduler-adapters.md for the quirks this encodes).
#
# Idempotent: a second run while everything is up only checks and exits 0.
# Daemons are found through their pid files (+ /proc/PID/comm), never by name.
# A changed slurm.conf restarts slurmctld/slurmd only; an already running
# MariaDB (it may be shared with other services) is never restarted: the one
# setting we need is also applied at runtime with SET GLOBAL.
#
# Exit 0 once `sinfo` shows the node usable; non-zero with log tails otherwise.
#
# Tunables (environment, all optional):
#   SLURM_CLUSTER_NAME   (localcluster)
#   SLURM_PARTITIONS     space separated; the first is Default (debug long)
#   SLURM_NODE_CPUS      CPUs advertised (8); more than real cores is fine
#                        thanks to SlurmdParameters=config_overrides
#   SLURM_NODE_MEM_MB    RealMemory advertised (4096)
#   SLURM_DEF_MEM_PER_CPU  DefMemPerCPU in MB (100); without it every job
#                        takes the whole node's memory and jobs serialize
#   SLURM_DB_PASS        MariaDB password of user 'slurm' (slurmdbpass)
#   SLURM_WAIT_SECS      wait for the node to become usable (90)
#   SLURM_SKIP_INSTALL   1 = never call apt-get (0)
#   SLURM_EXTRA_CONF     extra slurm.conf lines (newline separated)
set -euo pipefail
export PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$PATH"
export DEBIAN_FRONTEND=noninteractive

CLUSTER="${SLURM_CLUSTER_NAME:-localcluster}"
PARTITIONS="${SLURM_PARTITIONS:-debug long}"
NODE_CPUS="${SLURM_NODE_CPUS:-8}"
NODE_MEM="${SLURM_NODE_MEM_MB:-4096}"
DEF_MEM="${SLURM_DEF_MEM_PER_CPU:-100}"
DB_PASS="${SLURM_DB_PASS:-slurmdbpass}"
WAIT_SECS="${SLURM_WAIT_SECS:-90}"
SKIP_INSTALL="${SLURM_SKIP_INSTALL:-0}"

NODE="$(hostname -s)"
ETC=/etc/slurm
SPOOL_CTLD=/var/spool/slurmctld
SPOOL_D=/var/spool/slurmd
LOGDIR=/var/log/slurm
RUNDIR=/run/slurm
APT=(apt-get -o DPkg::Lock::Timeout=900)

PACKAGES=(munge mariadb-server slurmctld slurmd slurm-client slurmdbd
          slurm-wlm-mysql-plugin slurm-wlm-torque)

T_START=$(date +%s.%N)
log() { printf '[slurm.sh %6ss] %s\n' "$(awk -v a="$(date +%s.%N)" -v b="$T_START" 'BEGIN{printf "%.2f", a-b}')" "$*"; }
die() {
  log "ERROR: $*"
  for f in "$LOGDIR"/slurmdbd.log "$LOGDIR"/slurmctld.log "$LOGDIR"/slurmd.log /var/log/mysql/error.log; do
    if [ -f "$f" ]; then echo "--- tail $f"; tail -n 15 "$f"; fi
  done
  exit 1
}

[ "$(id -u)" = 0 ] || { echo "slurm.sh must run as root" >&2; exit 1; }

# alive PID: running and not a zombie (PID 1 on this VM reaps orphans ~2 s late)
alive() { [ -r "/proc/$1/stat" ] && [ "$(cut -d' ' -f3 "/proc/$1/stat" 2>/dev/null)" != Z ]; }
# pid_alive PIDFILE NAME: the pid file names a live process whose comm is NAME
pid_alive() {
  local pf=$1 name=$2 pid
  [ -r "$pf" ] || return 1
  pid=$(tr -dc '0-9' < "$pf")
  [ -n "$pid" ] && [ -r "/proc/$pid/comm" ] && [ "$(cat "/proc/$pid/comm")" = "$name" ] && alive "$pid"
}
# wait_for SECONDS CMD...: poll CMD every 0.2 s
wait_for() {
  local secs=$1; shift
  local end=$(( $(date +%s) + secs ))
  until "$@" >/dev/null 2>&1; do
    [ "$(date +%s)" -lt "$end" ] || return 1
    sleep 0.2
  done
}
# stop_pid PIDFILE NAME: TERM the daemon named in PIDFILE, KILL after 10 s
stop_pid() {
  local pf=$1 name=$2 pid _
  pid_alive "$pf" "$name" || return 0
  pid=$(tr -dc '0-9' < "$pf")
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 100); do alive "$pid" || return 0; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
}

# ---------------------------------------------------------------- 1. install
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  [ "$SKIP_INSTALL" = 1 ] && die "missing packages: ${missing[*]}"
  log "installing: ${missing[*]}"
  # apt-get update only when the lists are missing or do not know slurmctld
  # (fresh machine); the lock timeout waits for other apt runs on a shared box.
  if ! apt-cache policy slurmctld slurm-wlm-torque 2>/dev/null | grep -q 'Candidate: [0-9]'; then
    "${APT[@]}" update -qq
  fi
  # Retry once after an update: stale lists give 404s on superseded versions.
  "${APT[@]}" install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
    || { "${APT[@]}" update -qq &&
         "${APT[@]}" install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; } \
    || die "apt-get install failed"
  log "packages installed"
else
  log "packages already installed (slurmctld $(dpkg-query -W -f='${Version}' slurmctld))"
fi

# ------------------------------------------------------ 2. users, dirs, keys
id slurm >/dev/null 2>&1 || die "user slurm missing (it comes with the slurm packages)"
install -d -o slurm -g slurm -m 0755 "$SPOOL_CTLD" "$LOGDIR" "$RUNDIR"
install -d -o root  -g root  -m 0755 "$SPOOL_D" "$ETC"
install -d -o munge -g munge -m 0755 /run/munge
install -d -o munge -g munge -m 0700 /var/lib/munge /var/log/munge
install -d -o mysql -g mysql -m 0755 /run/mysqld /var/log/mysql
if [ ! -s /etc/munge/munge.key ]; then
  mungekey --create --keyfile=/etc/munge/munge.key 2>/dev/null \
    || dd if=/dev/urandom of=/etc/munge/munge.key bs=128 count=1 status=none
fi
chown munge:munge /etc/munge/munge.key; chmod 0400 /etc/munge/munge.key

# ------------------------------------------------------------ 3. configs
# put_file DEST OWNER MODE  (content on stdin); sets LAST_CHANGED=1 if it differed
put_file() {
  local dest=$1 owner=$2 mode=$3 tmp
  tmp=$(mktemp)
  cat > "$tmp"
  if [ -f "$dest" ] && cmp -s "$tmp" "$dest"; then rm -f "$tmp"; LAST_CHANGED=0
  else mv "$tmp" "$dest"; LAST_CHANGED=1; fi
  chown "$owner" "$dest"; chmod "$mode" "$dest"
}

gen_slurm_conf() {
cat <<EOF
# generated by hpcgate scripts/services/slurm.sh - single node test cluster
ClusterName=$CLUSTER
# hostname addressed through loopback: name resolution never matters
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=slurm
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=$SPOOL_CTLD
SlurmdSpoolDir=$SPOOL_D
SlurmctldPidFile=$RUNDIR/slurmctld.pid
SlurmdPidFile=$RUNDIR/slurmd.pid
SlurmctldLogFile=$LOGDIR/slurmctld.log
SlurmdLogFile=$LOGDIR/slurmd.log
SlurmctldPort=6817
SlurmdPort=6818
SwitchType=switch/none
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# without DefMemPerCPU a job allocates all node memory and jobs run one at a time
DefMemPerCPU=$DEF_MEM
# lets the node advertise more CPUs than it has (more concurrent tiny test jobs)
SlurmdParameters=config_overrides
ReturnToService=2
SchedulerType=sched/backfill
# the default batch_sched_delay is 3 s per scheduling of batch jobs
SchedulerParameters=batch_sched_delay=0
# dependents of a failed job are cancelled (cascading) instead of pending forever
DependencyParameters=kill_invalid_depend
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=task=5
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=6819
JobCompType=jobcomp/none
MailProg=/bin/true
MinJobAge=300
InactiveLimit=0
KillWait=5
Waittime=0
SlurmctldTimeout=30
SlurmdTimeout=60
NodeName=$NODE NodeAddr=127.0.0.1 NodeHostname=$NODE CPUs=$NODE_CPUS Boards=1 SocketsPerBoard=1 CoresPerSocket=$NODE_CPUS ThreadsPerCore=1 RealMemory=$NODE_MEM State=UNKNOWN
EOF
local first=1 p def max
for p in $PARTITIONS; do
  if [ $first = 1 ]; then def=YES; max=30:00; first=0; else def=NO; max=INFINITE; fi
  echo "PartitionName=$p Nodes=$NODE Default=$def MaxTime=$max State=UP"
done
if [ -n "${SLURM_EXTRA_CONF:-}" ]; then printf '%s\n' "$SLURM_EXTRA_CONF"; fi
}
# process substitution, not a pipe: put_file must run in this shell to set LAST_CHANGED
put_file "$ETC/slurm.conf" root:root 0644 < <(gen_slurm_conf)
CONF_CHANGED=$LAST_CHANGED

# slurmdbd refuses a slurmdbd.conf not owned by SlurmUser or not mode 0600
put_file "$ETC/slurmdbd.conf" slurm:slurm 0600 <<EOF
# generated by hpcgate scripts/services/slurm.sh
AuthType=auth/munge
DbdHost=localhost
DbdPort=6819
SlurmUser=slurm
LogFile=$LOGDIR/slurmdbd.log
PidFile=$RUNDIR/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=slurm
StoragePass=$DB_PASS
StorageLoc=slurm_acct_db
EOF
DBD_CHANGED=$LAST_CHANGED

# No cgroup.conf: with proctrack/linuxproc + task/none 22.05 needs none, and
# "CgroupPlugin=disabled" (a 23.x value) makes 22.05's slurmd refuse to start.
if [ -f "$ETC/cgroup.conf" ] && grep -q 'generated by hpcgate' "$ETC/cgroup.conf"; then
  rm -f "$ETC/cgroup.conf"; CONF_CHANGED=1
fi
# slurmdbd wants innodb_lock_wait_timeout >= 900 (it logs a warning otherwise).
# Persisted only where the Debian include dir exists (some images ship a
# trimmed my.cnf without it); it is also set at runtime below (SET GLOBAL).
if [ -d /etc/mysql/mariadb.conf.d ]; then
  put_file /etc/mysql/mariadb.conf.d/99-slurmdbd.cnf root:root 0644 <<'EOF'
[mysqld]
innodb_lock_wait_timeout=900
EOF
fi
log "configs written (changed: slurm.conf=$CONF_CHANGED slurmdbd.conf=$DBD_CHANGED)"

# --------------------------------------------------------------- 4. munged
if pid_alive /run/munge/munged.pid munged && munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
  log "munged already running"
else
  runuser -u munge -- /usr/sbin/munged --force
  wait_for 10 bash -c 'munge -n | unmunge' || die "munged did not start"
  log "munged started (pid $(cat /run/munge/munged.pid))"
fi

# -------------------------------------------------------------- 5. MariaDB
# An already running server (maybe started by the image or another service) is
# reused as is and never restarted from here.
if mariadb-admin ping >/dev/null 2>&1; then
  log "MariaDB already running"
else
  if [ ! -d /var/lib/mysql/mysql ]; then
    mariadb-install-db --user=mysql --datadir=/var/lib/mysql >/dev/null || die "mariadb-install-db failed"
  fi
  start-stop-daemon --start --background --pidfile /run/mysqld/mysqld.pid \
    --exec /usr/sbin/mariadbd -- --user=mysql --pid-file=/run/mysqld/mysqld.pid \
    --skip-networking --log-error=/var/log/mysql/error.log
  wait_for 60 mariadb-admin ping || die "MariaDB did not start"
  log "MariaDB started (pid $(cat /run/mysqld/mysqld.pid))"
fi
mariadb -e "SET GLOBAL innodb_lock_wait_timeout=900;
  CREATE DATABASE IF NOT EXISTS slurm_acct_db;
  CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '$DB_PASS';
  ALTER USER 'slurm'@'localhost' IDENTIFIED BY '$DB_PASS';
  GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';" || die "could not create the DB user"

# ------------------------------------------------------------- 6. slurmdbd
if [ "$DBD_CHANGED" = 1 ] && pid_alive "$RUNDIR/slurmdbd.pid" slurmdbd; then
  log "slurmdbd.conf changed: restarting slurmdbd"; stop_pid "$RUNDIR/slurmdbd.pid" slurmdbd
fi
if pid_alive "$RUNDIR/slurmdbd.pid" slurmdbd; then
  log "slurmdbd already running"
else
  /usr/sbin/slurmdbd || die "slurmdbd failed to start"
  wait_for 60 sacctmgr -n list cluster || die "slurmdbd not answering"
  wait_for 10 pid_alive "$RUNDIR/slurmdbd.pid" slurmdbd || die "slurmdbd pid file missing"
  log "slurmdbd started (pid $(cat "$RUNDIR/slurmdbd.pid"))"
fi
if ! sacctmgr -n -P list cluster format=cluster | grep -qx "$CLUSTER"; then
  sacctmgr -i add cluster "$CLUSTER" >/dev/null || die "sacctmgr add cluster failed"
  log "cluster $CLUSTER registered in accounting"
fi

# ------------------------------------------------- 7. slurmctld and slurmd
# Node definition changes need a slurmctld restart (scontrol reconfigure refuses).
if [ "$CONF_CHANGED" = 1 ]; then
  if pid_alive "$RUNDIR/slurmd.pid" slurmd || pid_alive "$RUNDIR/slurmctld.pid" slurmctld; then
    log "slurm.conf changed: restarting slurmctld and slurmd"
  fi
  stop_pid "$RUNDIR/slurmd.pid" slurmd
  stop_pid "$RUNDIR/slurmctld.pid" slurmctld
fi
if pid_alive "$RUNDIR/slurmctld.pid" slurmctld; then
  log "slurmctld already running"
else
  /usr/sbin/slurmctld || die "slurmctld failed to start"
  wait_for 30 scontrol ping || die "slurmctld not answering"
  wait_for 10 pid_alive "$RUNDIR/slurmctld.pid" slurmctld || die "slurmctld pid file missing"
  log "slurmctld started (pid $(cat "$RUNDIR/slurmctld.pid"))"
fi
if pid_alive "$RUNDIR/slurmd.pid" slurmd; then
  log "slurmd already running"
else
  /usr/sbin/slurmd || die "slurmd failed to start"
  wait_for 10 pid_alive "$RUNDIR/slurmd.pid" slurmd || die "slurmd did not stay up"
  log "slurmd started (pid $(cat "$RUNDIR/slurmd.pid"))"
fi

# -------------------------------------------------- 8. wait for a usable node
node_state() { sinfo -h -N -n "$NODE" -o '%T' 2>/dev/null | head -n1; }
end=$(( $(date +%s) + WAIT_SECS ))
while :; do
  st=$(node_state)
  case "$st" in
    idle|mixed|allocated|completing) break ;;
    down*|drain*|fail*)
      # e.g. "Node unexpectedly rebooted" after a restart with stale state
      scontrol update nodename="$NODE" state=resume >/dev/null 2>&1 || true ;;
  esac
  [ "$(date +%s)" -lt "$end" ] || die "node $NODE not usable after ${WAIT_SECS}s (state: ${st:-unknown})"
  sleep 0.3
done
command -v qsub >/dev/null || die "qsub (slurm-wlm-torque) missing"
log "cluster ready: node $NODE is $st"
sinfo
