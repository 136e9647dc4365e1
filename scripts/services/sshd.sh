#!/usr/bin/env bash
# scripts/services/sshd.sh - a loopback "login node" for hpcgate's SSH mode tests:
# sshd on 127.0.0.1:2222 and 127.0.0.2:2222 (a second login-node address),
# key-only, for the throw-away user `hpctest` (passwordless sudo for Ansible
# become; can run the Slurm client commands as soon as scripts/services/slurm.sh
# has run: they only need /etc/slurm/slurm.conf readable and the munge socket).
#
# Target: Debian 12 (bookworm, OpenSSH 9.2), root, no systemd, non-interactive.
# Idempotent: a second run while sshd is up only checks and exits 0; a changed
# sshd_config is applied with SIGHUP. The daemon is found through its pid file
# (+ /proc/PID/comm), never by name.
#
# State (keys, config, log, env) lives in $HPCGATE_TEST_SSHD_DIR
# (/var/lib/hpcgate-test/sshd). After a run, `. $DIR/env` gives
# HPCGATE_TEST_SSH_{HOST,HOST2,PORT,USER,KEY,KNOWN_HOSTS,SCRATCH}.
#
# Also installs iptables (used by the integration tests to black-hole one
# test connection; the rule is scoped to the source address 127.0.0.3).
#
# Tunables: SSHD_SKIP_INSTALL=1 never calls apt-get.
set -euo pipefail
export PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$PATH"
export DEBIAN_FRONTEND=noninteractive

DIR="${HPCGATE_TEST_SSHD_DIR:-/var/lib/hpcgate-test/sshd}"
PORT=2222
ADDRS=(127.0.0.1 127.0.0.2)
USER_NAME=hpctest
SKIP_INSTALL="${SSHD_SKIP_INSTALL:-0}"
SSHD=/usr/sbin/sshd
APT=(apt-get -o DPkg::Lock::Timeout=900)
PACKAGES=(openssh-server openssh-client sudo iptables)

log() { printf '[sshd.sh] %s\n' "$*"; }
die() {
  log "ERROR: $*"
  if [ -f "$DIR/sshd.log" ]; then echo "--- tail $DIR/sshd.log"; tail -n 15 "$DIR/sshd.log"; fi
  exit 1
}
[ "$(id -u)" = 0 ] || { echo "sshd.sh must run as root" >&2; exit 1; }

alive() { [ -r "/proc/$1/stat" ] && [ "$(cut -d' ' -f3 "/proc/$1/stat" 2>/dev/null)" != Z ]; }
# pid_alive PIDFILE: the pid file names a live process whose comm is sshd
pid_alive() {
  local pid
  [ -r "$1" ] || return 1
  pid=$(tr -dc '0-9' < "$1")
  [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = sshd ] && alive "$pid"
}
wait_for() { # SECONDS CMD...
  local end=$(( $(date +%s) + $1 )); shift
  until "$@" >/dev/null 2>&1; do [ "$(date +%s)" -lt "$end" ] || return 1; sleep 0.1; done
}

# ---------------------------------------------------------------- 1. packages
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  [ "$SKIP_INSTALL" = 1 ] && die "missing packages: ${missing[*]}"
  log "installing: ${missing[*]}"
  # update only when the lists do not know a package (fresh machine); the
  # DPkg lock timeout waits for other apt runs (it does not cover the lists lock).
  for p in "${missing[@]}"; do
    if ! apt-cache policy "$p" 2>/dev/null | grep -q 'Candidate: [0-9]'; then
      "${APT[@]}" update -qq; break
    fi
  done
  # postinst says "policy-rc.d denied execution of start": nothing auto-starts, fine.
  "${APT[@]}" install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
    || { "${APT[@]}" update -qq &&
         "${APT[@]}" install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; } \
    || die "apt-get install failed"
fi

# ------------------------------------------------------------------- 2. user
if ! id "$USER_NAME" >/dev/null 2>&1; then
  useradd -m -s /bin/bash "$USER_NAME"; log "created user $USER_NAME"
fi
# useradd leaves the password '!' (locked); with UsePAM no sshd then refuses even
# key logins ("account is locked"). '*' = no password, not locked.
if [ "$(getent shadow "$USER_NAME" | cut -d: -f2)" != '*' ]; then usermod -p '*' "$USER_NAME"; fi
HOME_DIR="$(getent passwd "$USER_NAME" | cut -d: -f6)"
SCRATCH="$HOME_DIR/scratch"
install -d -m 0755 -o "$USER_NAME" -g "$USER_NAME" "$HOME_DIR" "$SCRATCH"

SUDOERS=/etc/sudoers.d/hpctest
if [ "$(cat "$SUDOERS" 2>/dev/null)" != "$USER_NAME ALL=(ALL) NOPASSWD:ALL" ]; then
  tmp=$(mktemp)
  echo "$USER_NAME ALL=(ALL) NOPASSWD:ALL" > "$tmp"; chmod 0440 "$tmp"
  visudo -cqf "$tmp" || { rm -f "$tmp"; die "sudoers entry rejected by visudo"; }
  mv "$tmp" "$SUDOERS"; log "passwordless sudo for $USER_NAME"
fi

# ------------------------------------------------------------------- 3. keys
install -d -m 0755 "$(dirname "$DIR")" "$DIR"
[ -f "$DIR/host_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C hpcgate-test-host -f "$DIR/host_ed25519"
[ -f "$DIR/client_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C hpcgate-test-client -f "$DIR/client_ed25519"
chmod 0600 "$DIR/host_ed25519" "$DIR/client_ed25519"
install -d -m 0700 -o "$USER_NAME" -g "$USER_NAME" "$HOME_DIR/.ssh"
AUTH="$HOME_DIR/.ssh/authorized_keys"
if ! grep -qxF "$(cat "$DIR/client_ed25519.pub")" "$AUTH" 2>/dev/null; then
  cat "$DIR/client_ed25519.pub" >> "$AUTH"
fi
chown "$USER_NAME:$USER_NAME" "$AUTH"; chmod 0600 "$AUTH"

HOSTKEY="$(cut -d' ' -f1,2 "$DIR/host_ed25519.pub")"
{ for a in "${ADDRS[@]}"; do echo "[$a]:$PORT $HOSTKEY"; done; } > "$DIR/known_hosts.new"
mv "$DIR/known_hosts.new" "$DIR/known_hosts"; chmod 0644 "$DIR/known_hosts"

# ----------------------------------------------------------------- 4. config
{
  echo "# generated by hpcgate scripts/services/sshd.sh"
  echo "Port $PORT"
  for a in "${ADDRS[@]}"; do echo "ListenAddress $a"; done
  cat <<EOF
HostKey $DIR/host_ed25519
PidFile $DIR/sshd.pid
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
AuthenticationMethods publickey
PermitRootLogin no
# hpcg-alice/hpcg-bob: per-user cluster accounts (scripts/services/job-accounts.sh)
AllowUsers $USER_NAME hpcg-alice hpcg-bob
# without PAM the locked-account check applies: the user gets password '*'
UsePAM no
# OpenSSH's default, kept on purpose: real login nodes have it (the runner caps at 6)
MaxSessions 10
# parallel test workers open many connections at once
MaxStartups 50:30:200
# end sessions whose client vanished (black-holed by a fault test) after ~30 s
ClientAliveInterval 10
ClientAliveCountMax 3
PrintMotd no
Subsystem sftp internal-sftp
LogLevel VERBOSE
EOF
} > "$DIR/sshd_config.new"
RELOAD=0
if cmp -s "$DIR/sshd_config.new" "$DIR/sshd_config"; then rm -f "$DIR/sshd_config.new"
else mv "$DIR/sshd_config.new" "$DIR/sshd_config"; RELOAD=1; fi
install -d -m 0755 /run/sshd          # privilege-separation dir, absent without systemd
"$SSHD" -t -f "$DIR/sshd_config" || die "sshd -t rejected $DIR/sshd_config"

# ------------------------------------------------------------------ 5. start
listening() { ss -Hltn "sport = :$PORT" 2>/dev/null | grep -qF "$1:$PORT"; }
if pid_alive "$DIR/sshd.pid"; then
  if [ "$RELOAD" = 1 ]; then
    kill -HUP "$(tr -dc '0-9' < "$DIR/sshd.pid")"; sleep 0.3; log "sshd reloaded (config changed)"
  else
    log "sshd already running (pid $(tr -dc '0-9' < "$DIR/sshd.pid"))"
  fi
else
  for a in "${ADDRS[@]}"; do listening "$a" && die "$a:$PORT is already in use by another process"; done
  "$SSHD" -f "$DIR/sshd_config" -E "$DIR/sshd.log"     # daemonizes, writes PidFile
  for a in "${ADDRS[@]}"; do wait_for 10 listening "$a" || die "sshd is not listening on $a:$PORT"; done
  wait_for 5 pid_alive "$DIR/sshd.pid" || die "sshd pid file missing"
  log "sshd started (pid $(tr -dc '0-9' < "$DIR/sshd.pid")) on ${ADDRS[*]} port $PORT"
fi

# -------------------------------------------------------------------- 6. env
cat > "$DIR/env.new" <<EOF
# generated by scripts/services/sshd.sh; shell-sourceable
export HPCGATE_TEST_SSH_HOST=127.0.0.1
export HPCGATE_TEST_SSH_HOST2=127.0.0.2
export HPCGATE_TEST_SSH_PORT=$PORT
export HPCGATE_TEST_SSH_USER=$USER_NAME
export HPCGATE_TEST_SSH_KEY=$DIR/client_ed25519
export HPCGATE_TEST_SSH_KNOWN_HOSTS=$DIR/known_hosts
export HPCGATE_TEST_SSH_SCRATCH=$SCRATCH
EOF
chmod 0644 "$DIR/env.new"; mv "$DIR/env.new" "$DIR/env"

# ------------------------------------------------------------ 7. smoke tests
for a in "${ADDRS[@]}"; do
  ssh -p "$PORT" -i "$DIR/client_ed25519" -o BatchMode=yes -o IdentitiesOnly=yes \
      -o UserKnownHostsFile="$DIR/known_hosts" -o StrictHostKeyChecking=yes \
      -o ConnectTimeout=5 "$USER_NAME@$a" 'sudo -n true' \
    || die "ssh smoke test to $a:$PORT failed (login or sudo)"
done
# Slurm client commands as hpctest need slurm.conf readable + the munge socket;
# Slurm itself is scripts/services/slurm.sh's job, so this only reports.
if command -v sinfo >/dev/null 2>&1 && [ -f /etc/slurm/slurm.conf ]; then
  if runuser -u "$USER_NAME" -- sinfo -h >/dev/null 2>&1; then
    log "slurm client usable as $USER_NAME"
  else
    log "WARNING: 'sinfo' fails as $USER_NAME (slurm not started? slurm.conf unreadable? munged down?)"
  fi
else
  log "slurm not installed (yet): run scripts/services/slurm.sh for sbatch over SSH"
fi
log "ready: . $DIR/env"
