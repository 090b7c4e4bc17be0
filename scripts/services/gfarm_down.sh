#!/usr/bin/env bash
# Stop the Gfarm instance gfarm_up.sh started in $GF_DIR: only the processes named by its pid files
# whose command line names $GF_DIR (TERM, then KILL after 10 s), gfsd before gfmd. A gfarm2fs mount
# under $GF_DIR is unmounted first. --purge also removes $GF_DIR and its lines of /etc/hosts.
# The packages, OS users and shared keys stay.
set -uo pipefail
D=${GF_DIR:-/tmp/tiercel-gfarm}
NODE_PORT=${GF_NODE_PORT:-10610}
NODES=${GF_NODES:-3}

ours() { [ -r "/proc/$1/cmdline" ] && tr '\0' ' ' < "/proc/$1/cmdline" | grep -q -- "$D"; }

awk -v d="$D" '$3 ~ /^fuse/ && index($2, d) == 1 {print $2}' /proc/mounts 2>/dev/null |
  while read -r m; do umount "$m" 2>/dev/null || umount -l "$m"; done
pids=""
for f in "$D"/run/gfsd-*.pid "$D"/run/gfarm2fs*.pid "$D"/run/gfmd.pid; do
  [ -s "$f" ] || continue
  p=$(cat "$f")
  if ours "$p"; then
    kids=$(ps -o pid= --ppid "$p" 2>/dev/null | tr -d ' ' | tr '\n' ' ')   # gfsd's back channel
    kill -TERM "$p" 2>/dev/null && pids="$pids $p $kids"
  fi
  rm -f "$f"
done
left=""
for _ in $(seq 1 100); do
  left=""; for p in $pids; do kill -0 "$p" 2>/dev/null && left="$left $p"; done
  [ -z "$left" ] && break
  sleep 0.1
done
for p in $left; do kill -KILL "$p" 2>/dev/null; done
for i in $(seq 1 "$NODES"); do
  rm -rf "/tmp/.gfarm-gfsd127.0.0.$((i + 1))-$((NODE_PORT + i))"
  rm -f /tmp/gfsd-readonly-*_"$((NODE_PORT + i))"
done
if [ "${1:-}" = --purge ]; then
  case $D in /|"") ;; *) rm -rf "$D" ;; esac
  if grep -q "# tiercel-gfarm:$D\$" /etc/hosts; then
    # /etc/hosts may be bind-mounted: rewrite it in place
    grep -v "# tiercel-gfarm:$D\$" /etc/hosts > /etc/hosts.tiercel-gfarm || true
    cat /etc/hosts.tiercel-gfarm > /etc/hosts; rm -f /etc/hosts.tiercel-gfarm
  fi
fi
exit 0
