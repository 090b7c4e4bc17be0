#!/usr/bin/env bash
# gfarm_node.sh start|stop|kill N: node N of the instance gfarm_up.sh started in $GF_DIR, for tests
# of failures. kill = SIGKILL (a crash), stop = SIGTERM; both wait until gfmd sees the node down.
# start runs it again on its spool, so its replicas come back.
set -euo pipefail
D=${GF_DIR:-/tmp/tiercel-gfarm}
NODE_PORT=${GF_NODE_PORT:-10610}
PREFIX=${GF_PREFIX:-gfnode}
cmd=${1:?usage: gfarm_node.sh start|stop|kill N}; i=${2:?usage: gfarm_node.sh start|stop|kill N}
name=$PREFIX$i; ip=127.0.0.$((i + 1)); pidf=$D/run/gfsd-$name.pid
export GFARM_CONFIG_FILE=$D/etc/gfarm2.conf
alive() { [ -s "$pidf" ] && kill -0 "$(cat "$pidf")" 2>/dev/null &&
  tr '\0' ' ' < "/proc/$(cat "$pidf")/cmdline" | grep -q -- "$D"; }
up() { gfsched -M 2>/dev/null | grep -qx "$name"; }
case $cmd in
stop|kill)
  if alive; then
    p=$(cat "$pidf"); kids=$(ps -o pid= --ppid "$p" | tr -d ' ')
    sig=TERM; [ "$cmd" = kill ] && sig=KILL
    kill -$sig "$p" $kids 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$p" 2>/dev/null && kill -KILL "$p" $kids 2>/dev/null
  fi
  rm -f "$pidf" "/tmp/.gfarm-gfsd$ip-$((NODE_PORT + i))/sock"
  for _ in $(seq 1 100); do up || break; sleep 0.1; done
  echo "$name down" ;;
start)
  if ! alive; then
    gfsd -P "$pidf" -f "$GFARM_CONFIG_FILE" -h "$name" -l "$ip" -r "$D/spool/$name" -F "$D/log/gfsd-$name.log" -L info
  fi
  for _ in $(seq 1 300); do up && break; sleep 0.1; done
  up || { echo "$name did not come up" >&2; exit 1; }
  echo "$name up" ;;
*) echo "usage: gfarm_node.sh start|stop|kill N" >&2; exit 2 ;;
esac
