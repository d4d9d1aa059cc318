#!/usr/bin/env bash
# Two private MariaDB servers for the native binlog replication tests, under the build folder:
#   source  127.0.0.1:3307  log_bin, server_id=1, binlog_format=ROW, gtid_strict_mode
#   replica 127.0.0.1:3308  server_id=2, log_bin, log_slave_updates, replicating the source
#                           with MASTER_USE_GTID=slave_pos
# Unix sockets and data live in ${CARGO_TARGET_DIR:-target}/ci-db/mariadb-{source,replica}.
# Idempotent: servers already up are left running and the replica is (re)pointed only when
# it does not replicate yet. `--stop` stops both. The machine's own server on 3306 is never
# touched: everything here names its own socket or port.
set -euo pipefail
cd "$(dirname "$0")/../.."

root="${CARGO_TARGET_DIR:-target}/ci-db"
mkdir -p "$root"
root="$(cd "$root" && pwd)"
die() { printf 'private_mariadb: %s\n' "$*" >&2; exit 1; }

client() { # client NAME ARGS... : the mariadb client on that server's socket, as root
  local name=$1; shift
  mariadb --no-defaults -uroot --socket="$root/mariadb-$name/mysqld.sock" "$@"
}

stop_one() {
  local name=$1 dir="$root/mariadb-$1"
  [ -f "$dir/mysqld.pid" ] || return 0
  local pid
  pid=$(cat "$dir/mysqld.pid" 2>/dev/null || true)
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    client "$name" -e 'SHUTDOWN' >/dev/null 2>&1 || kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 120); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    kill -0 "$pid" 2>/dev/null && die "the $name server (pid $pid) did not stop within 30s"
  fi
  rm -f "$dir/mysqld.pid"
}

if [ "${1:-}" = "--stop" ]; then
  stop_one replica
  stop_one source
  echo "private MariaDB servers stopped"
  exit 0
fi

command -v mariadb-install-db >/dev/null || die "mariadb-install-db is missing (apt-get install mariadb-server)"
command -v mariadbd >/dev/null || [ -x /usr/sbin/mariadbd ] || die "mariadbd is missing (apt-get install mariadb-server)"
mariadbd=$(command -v mariadbd || echo /usr/sbin/mariadbd)

user_args=()
if [ "$(id -u)" = 0 ]; then user_args=(--user=root); fi

start_one() { # start_one NAME PORT SERVER_ID EXTRA...
  local name=$1 port=$2 id=$3; shift 3
  local dir="$root/mariadb-$name"
  mkdir -p "$dir"
  if client "$name" -e 'SELECT 1' >/dev/null 2>&1; then return 0; fi
  if [ ! -d "$dir/data/mysql" ]; then
    mariadb-install-db --no-defaults "${user_args[@]}" --datadir="$dir/data" \
      --auth-root-authentication-method=normal --skip-test-db >"$dir/install.log" 2>&1 \
      || die "mariadb-install-db for the $name failed (see $dir/install.log)"
  fi
  "$mariadbd" --no-defaults "${user_args[@]}" --datadir="$dir/data" \
    --port="$port" --bind-address=127.0.0.1 --socket="$dir/mysqld.sock" \
    --pid-file="$dir/mysqld.pid" --log-error="$dir/error.log" \
    --server-id="$id" --log-bin="$dir/data/binlog" --binlog-format=ROW \
    --gtid-strict-mode=1 --skip-name-resolve --innodb-buffer-pool-size=32M \
    --max-connections=100 "$@" >/dev/null 2>&1 &
  for _ in $(seq 1 240); do
    client "$name" -e 'SELECT 1' >/dev/null 2>&1 && break
    sleep 0.25
  done
  client "$name" -e 'SELECT 1' >/dev/null 2>&1 \
    || die "the $name server on port $port did not come up within 60s (see $dir/error.log)"
  # TCP logins as root with no password, like the machine's server the other tests use.
  # Not binlogged: the replica's own GTIDs would break gtid_strict_mode against the source's.
  client "$name" -e "SET sql_log_bin = 0;
    CREATE USER IF NOT EXISTS root@'127.0.0.1' IDENTIFIED BY '';
    GRANT ALL ON *.* TO root@'127.0.0.1' WITH GRANT OPTION;" \
    || die "granting root@127.0.0.1 on the $name failed"
}

start_one source 3307 1
start_one replica 3308 2 --log-slave-updates --read-only=0

client source -e "SET sql_log_bin = 0;
  CREATE USER IF NOT EXISTS repl@'127.0.0.1' IDENTIFIED BY 'repl';
  GRANT REPLICATION SLAVE ON *.* TO repl@'127.0.0.1';" \
  || die "creating the replication user on the source failed"

running=$(client replica -N -e "SHOW SLAVE STATUS" | awk -F'\t' '{print $11 "/" $12}')
if [ "$running" != "Yes/Yes" ]; then
  client replica -e "STOP SLAVE;
    CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=3307, MASTER_USER='repl',
      MASTER_PASSWORD='repl', MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1;
    START SLAVE;" || die "pointing the replica at the source failed"
fi
for _ in $(seq 1 120); do
  running=$(client replica -N -e "SHOW SLAVE STATUS" | awk -F'\t' '{print $11 "/" $12}')
  [ "$running" = "Yes/Yes" ] && break
  sleep 0.25
done
[ "$running" = "Yes/Yes" ] || die "the replica's IO/SQL threads are $running, not Yes/Yes (see $root/mariadb-replica/error.log)"
echo "private MariaDB pair up: source 127.0.0.1:3307, replica 127.0.0.1:3308 (GTID, slave_pos)"
