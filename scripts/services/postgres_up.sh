#!/usr/bin/env bash
# A throw-away PostgreSQL 15 (Debian 12) on 127.0.0.1 for the tests: no systemd, no cluster of the package's own.
#
# Everything of one instance (data, socket, log) lives in $PG_DIR, so several can run side by side:
#   PG_DIR    instance directory (default /tmp/postgres-ci); as root it is handed to user postgres
#   PG_PORT   TCP port on 127.0.0.1, also the name of the socket in $PG_DIR (default 5432)
#   PG_BIN    where initdb and pg_ctl are (default /usr/lib/postgresql/15/bin)
# The superuser is "postgres", trusted without a password (loopback and the socket only).
# Tuned to start fast, not to lose what it acknowledged: fsync and synchronous commit stay on.
# Started in ~1-2 s once installed; stop it with postgres_down.sh.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
D=${PG_DIR:-/tmp/postgres-ci}
PORT=${PG_PORT:-5432}
BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
if [ ! -x "$BIN/initdb" ]; then
  [ "$(id -u)" = 0 ] || { echo "$BIN/initdb is missing and installing PostgreSQL needs root" >&2; exit 1; }
  made_policy=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then     # the package must not start a cluster of its own
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod 755 /usr/sbin/policy-rc.d; made_policy=1
  fi
  apt-get install -y -q -o DPkg::Lock::Timeout=600 postgresql >/dev/null 2>&1 || {
    apt-get update -q -o DPkg::Lock::Timeout=600 >/dev/null 2>&1
    apt-get install -y -q -o DPkg::Lock::Timeout=600 postgresql >/dev/null; }
  [ -z "$made_policy" ] || rm -f /usr/sbin/policy-rc.d
  [ -x "$BIN/initdb" ] || { echo "no $BIN/initdb after installing postgresql" >&2; exit 1; }
fi
if [ "$(id -u)" = 0 ]; then
  install -d -o postgres -g postgres "$D"        # the server refuses to run as root
  as() { runuser -u postgres -- "$@"; }
else
  mkdir -p "$D"
  as() { "$@"; }
fi
if as "$BIN/pg_ctl" -D "$D/data" status >/dev/null 2>&1; then
  echo "postgres already running in $D/data"; exit 0
fi
if [ ! -s "$D/data/PG_VERSION" ]; then
  # --no-sync: the files of a fresh cluster are not flushed (a crash of the machine loses the instance
  # anyway); the server itself runs with fsync on.
  as "$BIN/initdb" -D "$D/data" -A trust -U postgres -E UTF8 --locale=C --no-sync >"$D/initdb.log" 2>&1 || {
    cat "$D/initdb.log" >&2; exit 1; }
  cat >> "$D/data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $PORT
unix_socket_directories = '$D'
max_connections = 200
shared_buffers = 64MB
fsync = on
synchronous_commit = on
full_page_writes = on
max_wal_size = 1GB
checkpoint_timeout = 30min
log_min_messages = warning
log_checkpoints = off
log_min_error_statement = panic
log_line_prefix = '%m [%p] %d '
CONF
fi
as "$BIN/pg_ctl" -D "$D/data" -l "$D/server.log" -o "-p $PORT -k $D -c listen_addresses=127.0.0.1" -w -t 60 start \
  >/dev/null || { tail -n 50 "$D/server.log" >&2 2>/dev/null; exit 1; }
echo "postgres ready on 127.0.0.1:$PORT (pid $(head -n 1 "$D/data/postmaster.pid"))"
