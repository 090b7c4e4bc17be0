#!/usr/bin/env bash
# A throw-away Gfarm file system on this machine for the tests: one metadata server (gfmd, metadata
# in memory) and GF_NODES file-system nodes (gfsd) that Gfarm sees as distinct hosts, each on a
# loopback address of its own (gfnode1 = 127.0.0.2, gfnode2 = 127.0.0.3, ...). No systemd.
#
# Everything of one instance (configuration, logs, pid files, spools) lives in $GF_DIR:
#   GF_DIR        instance directory (default /tmp/tiercel-gfarm)
#   GF_PORT       gfmd's TCP port (default 10601; gfmd listens on every address, it has no option)
#   GF_NODE_PORT  gfsd i listens on GF_NODE_PORT+i, TCP and UDP, on its own address (default 10610)
#   GF_NODES      how many nodes (default 3)
#   GF_PREFIX     node names PREFIX1..N (default gfnode), added to /etc/hosts with a mark of $GF_DIR
#   GF_USER       an ordinary user made in the OS and in Gfarm, with /home/USER in Gfarm (default
#                 gftest; empty: none)
# Debian's packages (gfmd gfsd gfarm-client gfarm2fs) are installed with apt-get when missing.
# Runs as root (gfsd changes to the user each client authenticates as). When the instance is up
# and healthy it does nothing; otherwise it stops what is left of it and starts afresh.
# On success it prints the client's environment (also in $GF_DIR/gfarm.env). gfarm_down.sh stops it.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
D=${GF_DIR:-/tmp/tiercel-gfarm}
PORT=${GF_PORT:-10601}
NODE_PORT=${GF_NODE_PORT:-10610}
NODES=${GF_NODES:-3}
PREFIX=${GF_PREFIX:-gfnode}
GUSER=${GF_USER-gftest}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CONF=$D/etc/gfarm2.conf
export GFARM_CONFIG_FILE=$CONF
MARK="# tiercel-gfarm:$D"

say() { echo "gfarm_up: $*" >&2; }
die() { say "$*"; exit 1; }
ip_of() { echo "127.0.0.$(( $1 + 1 ))"; }
[ "$(id -u)" = 0 ] || die "must run as root (gfsd switches to each authenticated user)"

missing=()
for p in gfmd gfsd gfarm-client gfarm2fs; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  say "installing ${missing[*]}"
  made_policy=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then      # the packages must not start daemons of their own
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod 755 /usr/sbin/policy-rc.d; made_policy=1
  fi
  apt-get install -y -q --no-install-recommends -o DPkg::Lock::Timeout=600 "${missing[@]}" >/dev/null 2>&1 || {
    apt-get update -q -o DPkg::Lock::Timeout=600 >/dev/null 2>&1
    apt-get install -y -q --no-install-recommends -o DPkg::Lock::Timeout=600 "${missing[@]}" >/dev/null; }
  [ -z "$made_policy" ] || rm -f /usr/sbin/policy-rc.d
fi
getent passwd _gfarmfs >/dev/null || die "no user _gfarmfs (the gfsd package makes it)"

client_env() {
  local hosts="" i
  for i in $(seq 1 "$NODES"); do hosts="$hosts $PREFIX$i"; done
  printf 'GFARM_CONFIG_FILE=%s\nGF_DIR=%s\nGF_HOSTS=%s\nGF_USER=%s\n' "$CONF" "$D" "${hosts# }" "$GUSER" \
    > "$D/gfarm.env"
  chmod 644 "$D/gfarm.env"
  cat "$D/gfarm.env"
}

healthy() {  # gfmd answers, and sees every gfsd up and authenticating
  [ -s "$D/run/gfmd.pid" ] && kill -0 "$(cat "$D/run/gfmd.pid")" 2>/dev/null || return 1
  [ "$(timeout 10 gfsched -M 2>/dev/null | wc -l)" -eq "$NODES" ] || return 1
  [ "$(timeout 20 gfhost -l 2>/dev/null | awk '$2 == "s"' | wc -l)" -eq "$NODES" ]
}
if [ -r "$CONF" ] && healthy; then client_env; exit 0; fi

GF_DIR=$D GF_NODE_PORT=$NODE_PORT GF_NODES=$NODES bash "$HERE/gfarm_down.sh" --purge >/dev/null 2>&1 || true
mkdir -p "$D/etc" "$D/run" "$D/log" "$D/spool"
chmod 755 "$D" "$D/etc" "$D/log"

for i in $(seq 1 "$NODES"); do
  name=$PREFIX$i; ip=$(ip_of "$i")
  have=$(getent ahostsv4 "$name" 2>/dev/null | awk 'NR == 1 {print $1}' || true)
  if [ -z "$have" ]; then echo "$ip $name $MARK" >> /etc/hosts
  elif [ "$have" != "$ip" ]; then die "$name resolves to $have, not $ip: set GF_PREFIX"; fi
done

common="metadb_server_host localhost
metadb_server_port $PORT
auth enable sharedsecret *
sockopt keepalive
# every node shares this machine's load: never count one as busy (gfrep, gfsched would skip it)
schedule_busy_load_thresh 1000"
printf '%s\n# give up after 3 s, not 30, when every replica of a file is on a node that is down\nno_file_system_node_timeout 3\ngfsd_connection_timeout 5\n' \
  "$common" > "$CONF"
chmod 644 "$CONF"
# no postgresql_* lines: gfmd keeps its metadata in memory (the "none" back end)
printf '%s\nadmin_user root\nmetadb_replication disable\n' "$common" > "$D/etc/gfmd.conf"
chmod 600 "$D/etc/gfmd.conf"

# shared-secret keys (made once, valid a year): gfmd and gfsd read each user's ~/.gfarm_shared_key
gfkey -c -p 31536000 >/dev/null
runuser -u _gfarmfs -- env GFARM_CONFIG_FILE="$CONF" gfkey -c -p 31536000 >/dev/null
if [ -n "$GUSER" ]; then
  id "$GUSER" >/dev/null 2>&1 || useradd -m -s /bin/bash "$GUSER"
  runuser -u "$GUSER" -- env GFARM_CONFIG_FILE="$CONF" gfkey -c -p 31536000 >/dev/null
fi

until_ok() {  # until_ok WHAT COMMAND...: poll every 50 ms, for 30 s at most
  local what=$1 n; shift
  for n in $(seq 1 600); do "$@" >/dev/null 2>&1 && return 0; sleep 0.05; done
  die "$what did not come up in 30 s (logs in $D/log)"
}
listening() { ss -Hltn "( sport = :$PORT )" | grep -q .; }
: > "$D/log/gfmd.log"
gfmd -P "$D/run/gfmd.pid" -f "$D/etc/gfmd.conf" -F "$D/log/gfmd.log" -L info   # absolute paths: it chdirs to /
until_ok "gfmd's port $PORT" listening    # a client that asks before it listens waits a second to retry
until_ok gfmd timeout 5 gfls -d /

gfgroup -ma gfarmroot root >/dev/null
if [ -n "$GUSER" ]; then
  gfuser -c "$GUSER" "Tiercel test user" "/home/$GUSER" ""
  gfmkdir -p "/home/$GUSER" && gfchown "$GUSER" "/home/$GUSER"
fi
gfmkdir -p /tmp && gfchmod 1777 /tmp
arch=$(gfarm.arch.guess)
for i in $(seq 1 "$NODES"); do
  name=$PREFIX$i
  gfhost -c -a "$arch" -p $((NODE_PORT + i)) -n "$(nproc)" "$name"
  install -d -o _gfarmfs -m 700 "$D/spool/$name"
  install -o _gfarmfs -m 644 /dev/null "$D/log/gfsd-$name.log"   # gfsd opens its log as _gfarmfs
  gfsd -P "$D/run/gfsd-$name.pid" -f "$CONF" -h "$name" -l "$(ip_of "$i")" -r "$D/spool/$name" \
    -F "$D/log/gfsd-$name.log" -L info
done
until_ok "$NODES gfsd" healthy
client_env
