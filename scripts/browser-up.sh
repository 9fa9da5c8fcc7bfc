#!/usr/bin/env bash
# Install (idempotently) Debian's Chromium and a Chinese font for the console's browser tests
# (tests/test_console_browser.py drives /usr/bin/chromium through Playwright; Playwright's own
# browser download is not used). Safe to run again: installed packages are left alone.
# Needs root for apt-get; without root it only checks and explains.
set -euo pipefail

log() { printf '[browser-up] %s\n' "$*" >&2; }
die() { printf '[browser-up] ERROR: %s\n' "$*" >&2; exit 1; }

missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
# A CJK font, so that screenshots show Chinese (small: WenQuanYi Micro Hei).
dpkg-query -W -f='${Status}' fonts-wqy-microhei 2>/dev/null | grep -q "ok installed" ||
    missing+=(fonts-wqy-microhei)

if [ ${#missing[@]} -eq 0 ]; then
    log "chromium $(/usr/bin/chromium --version 2>/dev/null | awk '{print $2}') and fonts present"
    exit 0
fi
[ "$(id -u)" -eq 0 ] || die "missing ${missing[*]}; run as root: apt-get install -y ${missing[*]}"
log "apt-get install ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
[ -x /usr/bin/chromium ] || die "/usr/bin/chromium missing after install"
log "chromium $(/usr/bin/chromium --version 2>/dev/null | awk '{print $2}') installed"
