#!/usr/bin/env bash
# Prosody 0.12 (Debian 12) on 127.0.0.1, VirtualHost "localhost", no systemd. Run as root.
#
# Everything of one instance (config, data, certs, pid, logs) lives in $PROSODY_DIR, so several
# instances can run side by side on different ports:
#   PROSODY_DIR        instance directory (default /tmp/prosody-ci); must be reachable by user prosody
#   PROSODY_C2S_PORT   plaintext / STARTTLS client port (default 5222)
#   PROSODY_TLS_PORT   direct TLS client port, XEP-0368 (default 5223)
#   PROSODY_ACCOUNTS   "user:password ..." registered on localhost (default: alice, bob, carol)
#   PROSODY_SMACKS     1 (default) loads stream management with a short hibernation, 0 leaves it out
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
D=${PROSODY_DIR:-/tmp/prosody-ci}
C2S=${PROSODY_C2S_PORT:-5222}
TLS=${PROSODY_TLS_PORT:-5223}
ACCOUNTS=${PROSODY_ACCOUNTS:-alice:alicepass bob:bobpass carol:carolpass}
SMACKS=${PROSODY_SMACKS:-1}
if ! command -v prosodyctl >/dev/null; then
  apt-get install -y -q -o DPkg::Lock::Timeout=600 --no-install-recommends prosody >/dev/null 2>&1 || {
    apt-get update -q -o DPkg::Lock::Timeout=600 >/dev/null 2>&1
    apt-get install -y -q -o DPkg::Lock::Timeout=600 --no-install-recommends prosody >/dev/null; }
fi
command -v openssl >/dev/null || apt-get install -y -q --no-install-recommends openssl >/dev/null 2>&1
mkdir -p $D/data $D/run $D/certs
# self-signed cert with SAN=localhost (Python's ssl checks SAN, not CN)
[ -s $D/certs/localhost.crt ] || openssl req -x509 -newkey rsa:2048 -nodes -days 365 -subj /CN=localhost \
   -addext subjectAltName=DNS:localhost -keyout $D/certs/localhost.key -out $D/certs/localhost.crt 2>/dev/null
if [ "$SMACKS" = 1 ]; then MOD_SMACKS='"smacks";'; else MOD_SMACKS=''; fi
cat > $D/prosody.cfg.lua <<CFG
pidfile = "$D/run/prosody.pid"
data_path = "$D/data"
certificates = "$D/certs"            -- finds localhost.crt/localhost.key
interfaces = { "127.0.0.1" }
local_interfaces = { "127.0.0.1" }
c2s_ports = { $C2S }                 -- plaintext or STARTTLS
c2s_direct_tls_ports = { $TLS }      -- direct TLS (XEP-0368)
modules_disabled = { "s2s" }
admins = { }
modules_enabled = { "roster"; "saslauth"; "tls"; "disco"; "ping"; "posix"; "carbons";
                    "pep"; "private"; "vcard_legacy"; "version"; "uptime"; "time"; $MOD_SMACKS }
authentication = "internal_hashed"
storage = "internal"
allow_registration = false
c2s_require_encryption = false       -- allow plaintext c2s on loopback
allow_unencrypted_plain_auth = true
-- faster dead-client detection for tests (defaults: 840 s / 600 s)
network_settings = { read_timeout = 5 }
smacks_hibernation_time = 5
log = { info = "$D/run/prosody.log"; error = "$D/run/prosody.err" }
VirtualHost "localhost"
CFG
chown -R prosody:prosody $D/data $D/run $D/certs; chmod 640 $D/certs/localhost.key
PCTL="prosodyctl --config $D/prosody.cfg.lua"
for a in $ACCOUNTS; do $PCTL register "${a%%:*}" localhost "${a#*:}" >/dev/null 2>&1; done
$PCTL start >/dev/null 2>&1 || true      # daemonizes (drops to user prosody), writes pidfile
for i in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/$C2S) 2>/dev/null && break; sleep 0.1; done
$PCTL status 2>&1 | grep -q 'is running' || { cat $D/run/prosody.err $D/run/prosody.log 2>/dev/null; exit 1; }
echo "prosody ready (pid $(cat $D/run/prosody.pid))"
