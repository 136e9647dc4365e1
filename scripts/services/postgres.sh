#!/usr/bin/env bash
# Ensure a PostgreSQL server answers on 127.0.0.1:5432 with trust auth for the tests.
# Idempotent and non-interactive. On this project's machines PostgreSQL is preinstalled;
# on a bare Debian 12 it is installed from Debian's packages.
set -euo pipefail
export PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$PATH"
log() { printf '[postgres] %s\n' "$*"; }

if pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null && psql -h 127.0.0.1 -U postgres -Atc 'select 1' >/dev/null 2>&1; then
  log "already running"; exit 0
fi
if ! command -v pg_ctlcluster >/dev/null 2>&1 || [ -z "$(ls /etc/postgresql 2>/dev/null)" ]; then
  [ "$(id -u)" = 0 ] || { echo "PostgreSQL missing; run as root to install it" >&2; exit 1; }
  log "installing postgresql"
  export DEBIAN_FRONTEND=noninteractive
  apt-cache policy postgresql 2>/dev/null | grep -q 'Candidate: [0-9]' || apt-get -o DPkg::Lock::Timeout=900 update -qq
  apt-get -o DPkg::Lock::Timeout=900 install -y -qq --no-install-recommends postgresql >/dev/null
fi
ver=$(ls /etc/postgresql | sort -V | tail -n1)
hba=/etc/postgresql/$ver/main/pg_hba.conf
conf=/etc/postgresql/$ver/main/postgresql.conf
# Trust on loopback (test machines only).
if ! grep -qE '^host\s+all\s+all\s+127\.0\.0\.1/32\s+trust' "$hba"; then
  sed -i '1i host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust\nlocal all all trust' "$hba"
fi
grep -qE "^listen_addresses\s*=\s*'(localhost|127\.0\.0\.1|\*)" "$conf" || echo "listen_addresses = '127.0.0.1'" >> "$conf"
# Many test sessions + workers; the default 100 is tight for scale-out tests.
grep -qE '^max_connections\s*=\s*(3|4|5)[0-9]{2}' "$conf" || echo "max_connections = 300" >> "$conf"
if pg_lsclusters -h | awk '{print $4}' | grep -q online; then
  pg_ctlcluster --skip-systemctl-redirect "$ver" main reload || true
  pg_ctlcluster --skip-systemctl-redirect "$ver" main restart
else
  pg_ctlcluster --skip-systemctl-redirect "$ver" main start
fi
for _ in $(seq 1 50); do
  pg_isready -h 127.0.0.1 -p 5432 -q && break; sleep 0.2
done
psql -h 127.0.0.1 -U postgres -Atc 'select 1' >/dev/null
log "running ($ver)"
