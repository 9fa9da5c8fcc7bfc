#!/usr/bin/env bash
# Stop the PostgreSQL, Redis and Elasticsearch instances started by
# scripts/services-up.sh. Tolerates services that are not running; data under
# $REPO/var/services is kept.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
VAR=$REPO/var/services
REDIS_PORT=63790

log() { printf '[services-down] %s\n' "$*" >&2; }

# wait_gone PID TIMEOUT_S: wait for a process to exit; 1 if still alive.
wait_gone() {
    local pid=$1 deadline=$((SECONDS + $2))
    while kill -0 "$pid" 2>/dev/null; do
        [ $SECONDS -lt $deadline ] || return 1
        sleep 0.5
    done
}

# --- PostgreSQL ---------------------------------------------------------------
PG_DATA=$VAR/postgres/data
PG_BIN=$(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V | tail -n1)
if [ -x "$PG_BIN/pg_ctl" ] && [ -s "$PG_DATA/PG_VERSION" ] &&
    (cd / && runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$PG_DATA" status >/dev/null 2>&1); then
    log "stopping postgres"
    (cd / && runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$PG_DATA" -m fast -w -t 60 stop >/dev/null)
fi
echo "postgres      down"

# --- Redis --------------------------------------------------------------------
REDIS_PIDFILE=$VAR/redis/redis.pid
if command -v redis-cli >/dev/null &&
    [ "$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null)" = PONG ]; then
    log "stopping redis"
    redis_pid=$(cat "$REDIS_PIDFILE" 2>/dev/null || true)
    redis-cli -h 127.0.0.1 -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true
    if [ -n "$redis_pid" ]; then wait_gone "$redis_pid" 30 || kill -9 "$redis_pid" 2>/dev/null || true; fi
fi
echo "redis         down"

# --- Elasticsearch ------------------------------------------------------------
ES_PIDFILE=$VAR/elasticsearch/es.pid
es_pid=$(cat "$ES_PIDFILE" 2>/dev/null || true)
if [ -n "$es_pid" ] && kill -0 "$es_pid" 2>/dev/null &&
    grep -q org.elasticsearch "/proc/$es_pid/cmdline" 2>/dev/null; then
    log "stopping elasticsearch (pid $es_pid)"
    kill -TERM "$es_pid"
    if ! wait_gone "$es_pid" 60; then
        log "elasticsearch did not stop in 60s; killing"
        kill -KILL "$es_pid" 2>/dev/null || true
        wait_gone "$es_pid" 10 || true
    fi
fi
rm -f "$ES_PIDFILE"
echo "elasticsearch down"
