#!/usr/bin/env bash
# Debian's Chromium for the dashboard's browser tests (tests/web/), installed when missing. Run as root.
#
# Playwright cannot download its own browsers here: the tests launch this one by its path
# (CHROMIUM, default /usr/bin/chromium). Nothing is started: each test session launches its own
# headless browser and closes it.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
BIN=${CHROMIUM:-/usr/bin/chromium}
if ! [ -x "$BIN" ]; then
  apt-get install -y -q -o DPkg::Lock::Timeout=600 --no-install-recommends chromium >/dev/null 2>&1 || {
    apt-get update -q -o DPkg::Lock::Timeout=600 >/dev/null 2>&1
    apt-get install -y -q -o DPkg::Lock::Timeout=600 --no-install-recommends chromium >/dev/null; }
fi
"$BIN" --version
