#!/usr/bin/env bash
# Stop the Prosody that prosody_up.sh started in $PROSODY_DIR, by its pid file (~2 s).
D=${PROSODY_DIR:-/tmp/prosody-ci}
f=$D/run/prosody.pid
[ -s $f ] || exit 0
p=$(cat $f); kill $p 2>/dev/null || exit 0
for i in $(seq 100); do kill -0 $p 2>/dev/null || exit 0; sleep 0.1; done
kill -9 $p 2>/dev/null; true
