#!/usr/bin/env bash
# Stop the SGE daemons by pid file. qmaster takes 5-11 s to shut down on SIGTERM.
qdel -u '*' >/dev/null 2>&1 || true           # delete all jobs (as manager)
sleep 1
pids=""
for f in /var/spool/gridengine/execd/*/execd.pid /var/spool/gridengine/qmaster/qmaster.pid; do
  [ -s "$f" ] && p=$(cat "$f") && kill "$p" 2>/dev/null && pids="$pids $p"
done
for i in $(seq 150); do alive=""; for p in $pids; do kill -0 "$p" 2>/dev/null && alive="$alive $p"; done
  [ -z "$alive" ] && break; sleep 0.1; done
for p in $alive; do kill -9 "$p" 2>/dev/null; done
true
