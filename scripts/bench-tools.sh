#!/usr/bin/env bash
# Install (idempotently) what `make bench` needs besides the virtualenv: wrk, the HTTP load
# generator, from Debian's packages. Safe to run again: an installed wrk is left alone.
set -euo pipefail

log() { printf '[bench-tools] %s\n' "$*" >&2; }
die() { printf '[bench-tools] ERROR: %s\n' "$*" >&2; exit 1; }

if command -v wrk >/dev/null; then
    exit 0
fi
[ "$(id -u)" -eq 0 ] || die "wrk is missing; run as root (apt-get) or install the wrk package"
log "apt-get install wrk"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends wrk >/dev/null
command -v wrk >/dev/null || die "wrk did not install"
