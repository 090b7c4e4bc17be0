#!/usr/bin/env bash
# Stop the PostgreSQL that postgres_up.sh started in $PG_DIR: pg_ctl's fast shutdown, then its postmaster's pid.
D=${PG_DIR:-/tmp/postgres-ci}
BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
f=$D/data/postmaster.pid
[ -s "$f" ] || exit 0
if [ "$(id -u)" = 0 ]; then as() { runuser -u "$(stat -c %U "$D/data")" -- "$@"; }; else as() { "$@"; }; fi
as "$BIN/pg_ctl" -D "$D/data" -m fast -w -t 30 stop >/dev/null 2>&1 && exit 0
p=$(head -n 1 "$f" 2>/dev/null) || exit 0        # pg_ctl gave up: the postmaster by its own pid
[ -n "$p" ] || exit 0
tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null | grep -qF -- "$D/data" || exit 0   # gone, or another process now
kill -INT "$p" 2>/dev/null || exit 0              # SIGINT: fast shutdown
for i in $(seq 100); do kill -0 "$p" 2>/dev/null || exit 0; sleep 0.1; done
kill -QUIT "$p" 2>/dev/null                       # SIGQUIT: immediate shutdown
for i in $(seq 50); do kill -0 "$p" 2>/dev/null || exit 0; sleep 0.1; done
kill -9 "$p" 2>/dev/null; true
