#!/usr/bin/env bash
# Stop what slurm_up.sh started, by pid file; wait until gone (each daemon needs 1-2 s).
if scontrol ping >/dev/null 2>&1; then            # cancel jobs so no job processes outlive slurmd
  squeue -h -o %A | xargs -r scancel
  for i in $(seq 50); do [ -z "$(squeue -h)" ] && break; sleep 0.2; done
fi
pids=""
for f in /run/slurmd.pid /run/slurmctld.pid /run/slurmdbd.pid /run/mysqld/mysqld.pid /run/munge/munged.pid; do
  [ -s "$f" ] && p=$(cat "$f") && kill "$p" 2>/dev/null && pids="$pids $p"
done
for i in $(seq 100); do alive=""; for p in $pids; do kill -0 "$p" 2>/dev/null && alive="$alive $p"; done
  [ -z "$alive" ] && break; sleep 0.1; done
for p in $alive; do kill -9 "$p" 2>/dev/null; done
true
