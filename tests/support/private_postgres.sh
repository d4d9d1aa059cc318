#!/usr/bin/env bash
# Two private PostgreSQL clusters for the logical-replication tests (`cargo test --test native`):
#   pg-source on 127.0.0.1:5433 (wal_level = logical, the publisher)
#   pg-target on 127.0.0.1:5434 (the subscriber)
# under ${CARGO_TARGET_DIR:-$REPO/target}/ci-db/, sockets in that folder, trust auth on
# 127.0.0.1 only. The machine's own cluster (5432) is never touched.
#
#   tests/support/private_postgres.sh          # initialise (first time) and start both
#   tests/support/private_postgres.sh --stop   # stop both (the data stays for next time)
#
# Idempotent: a cluster already running is left running. As root, initdb and pg_ctl run as
# the unprivileged `postgres` user (PostgreSQL refuses to run as root) and the folder is
# chowned to it. Exits non-zero, loudly, when anything fails; each server's log is
# ci-db/pg-<name>.log.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
TARGET_DIR="${CARGO_TARGET_DIR:-$REPO/target}"
case "$TARGET_DIR" in /*) ;; *) TARGET_DIR="$REPO/$TARGET_DIR" ;; esac
BASE="$TARGET_DIR/ci-db"

fail() {
  echo "private_postgres.sh: FAILED: $*" >&2
  exit 1
}

BIN="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)"
[ -n "$BIN" ] && [ -x "$BIN/initdb" ] || fail "no PostgreSQL server binaries under /usr/lib/postgresql/*/bin (install postgresql)"

# Runs a server binary as the unprivileged user when we are root.
as_pg() {
  if [ "$(id -u)" = 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

stop_one() {
  local dir="$BASE/pg-$1"
  if [ -f "$dir/postmaster.pid" ]; then
    as_pg "$BIN/pg_ctl" -D "$dir" -m fast -w -t 60 stop >/dev/null \
      || fail "pg_ctl stop of $dir failed (see $BASE/pg-$1.log)"
    echo "private_postgres.sh: stopped pg-$1" >&2
  fi
}

if [ "${1:-}" = "--stop" ]; then
  stop_one source
  stop_one target
  exit 0
fi

mkdir -p "$BASE"
if [ "$(id -u)" = 0 ]; then
  id postgres >/dev/null 2>&1 || fail "running as root needs the unprivileged 'postgres' user (installed with the postgresql package)"
  chown postgres "$BASE"
  # The server user must be able to reach the folder: every parent needs search permission.
  d="$BASE"
  while [ "$d" != / ]; do
    d="$(dirname "$d")"
    as_pg test -x "$d" || chmod o+x "$d"
  done
fi

start_one() {
  local name="$1" port="$2" wal="$3"
  local dir="$BASE/pg-$name" log="$BASE/pg-$name.log"
  if [ ! -f "$dir/PG_VERSION" ]; then
    rm -rf "$dir"
    as_pg "$BIN/initdb" -D "$dir" -U postgres --auth=trust --no-instructions -E UTF8 >"$BASE/pg-$name.initdb.log" 2>&1 \
      || fail "initdb of $dir failed (see $BASE/pg-$name.initdb.log)"
    cat >>"$dir/postgresql.conf" <<CONF
# cutover tests (tests/support/private_postgres.sh)
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$BASE'
wal_level = $wal
max_replication_slots = 20
max_wal_senders = 20
max_logical_replication_workers = 20
max_worker_processes = 40
max_connections = 200
fsync = off
CONF
    # Loopback only, trust: a throwaway test cluster.
    cat >"$dir/pg_hba.conf" <<HBA
local all all trust
host all all 127.0.0.1/32 trust
host replication all 127.0.0.1/32 trust
HBA
  fi
  if as_pg "$BIN/pg_ctl" -D "$dir" status >/dev/null 2>&1; then
    echo "private_postgres.sh: pg-$name already running on 127.0.0.1:$port" >&2
  else
    touch "$log"
    [ "$(id -u)" = 0 ] && chown postgres "$log"
    as_pg "$BIN/pg_ctl" -D "$dir" -l "$log" -w -t 60 start >/dev/null \
      || fail "pg-$name did not start on 127.0.0.1:$port (see $log)"
    echo "private_postgres.sh: started pg-$name on 127.0.0.1:$port" >&2
  fi
  "$BIN/pg_isready" -q -h 127.0.0.1 -p "$port" || fail "pg-$name does not answer on 127.0.0.1:$port"
  local got
  got="$(psql -h 127.0.0.1 -p "$port" -U postgres -d postgres -Atc 'SHOW wal_level')" \
    || fail "cannot query pg-$name on 127.0.0.1:$port"
  [ "$got" = "$wal" ] || fail "pg-$name reports wal_level = $got, expected $wal (remove $dir to re-initialise)"
}

start_one source 5433 logical
start_one target 5434 replica
