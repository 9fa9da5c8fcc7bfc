#!/usr/bin/env bash
# Install (idempotently) and start PostgreSQL, Redis and Elasticsearch on
# 127.0.0.1 for the "services" test profile and for development.
#   PostgreSQL 127.0.0.1:54320   Redis 127.0.0.1:63790   Elasticsearch 127.0.0.1:9200
# State lives under $REPO/var/services (git-ignored); the Elasticsearch download
# is cached outside the repo in $SMARTCIRCLE_CACHE (default ~/.cache/smartcircle).
# Must run as root (apt-get, runuser). Safe to run again: running services are left alone.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
VAR=$REPO/var/services
CACHE=${SMARTCIRCLE_CACHE:-$HOME/.cache/smartcircle}

PG_PORT=54320
REDIS_PORT=63790
ES_PORT=9200
# Newest 8.x integ-test-zip on Maven Central (python client pin: elasticsearch>=8.19,<9).
ES_VERSION=8.19.21
ES_ARTIFACT=org.elasticsearch.distribution.integ-test-zip:elasticsearch:$ES_VERSION:zip

PG_VAR=$VAR/postgres
PG_DATA=$PG_VAR/data
REDIS_VAR=$VAR/redis
ES_VAR=$VAR/elasticsearch
ES_HOME=$CACHE/elasticsearch-$ES_VERSION

log() { printf '[services-up] %s\n' "$*" >&2; }
die() { printf '[services-up] ERROR: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "must run as root (apt-get, runuser)"

# --- packages -----------------------------------------------------------------
pg_bin() {  # newest /usr/lib/postgresql/*/bin that has initdb
    local d
    d=$(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V | tail -n1)
    [ -n "$d" ] && [ -x "$d/initdb" ] && echo "$d"
}

missing=()
pg_bin >/dev/null || missing+=(postgresql)
command -v redis-server >/dev/null || missing+=(redis-server)
command -v redis-cli >/dev/null || missing+=(redis-tools)
command -v java >/dev/null || missing+=(openjdk-17-jre-headless)
command -v mvn >/dev/null || missing+=(maven)
command -v unzip >/dev/null || missing+=(unzip)
command -v curl >/dev/null || missing+=(curl)
if [ ${#missing[@]} -gt 0 ]; then
    log "apt-get install ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
PG_BIN=$(pg_bin) || die "initdb not found under /usr/lib/postgresql/*/bin"

# Service users. postgres comes with the package; Elasticsearch refuses to run as root.
id elasticsearch >/dev/null 2>&1 ||
    useradd --system --user-group --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin elasticsearch

# chmod o+x on the ancestors of $2 that user $1 cannot traverse (e.g. /root).
ensure_traversable() {
    local user=$1 path=$2 d=""
    local IFS=/
    for part in ${path#/}; do
        d="$d/$part"
        [ -d "$d" ] || break
        runuser -u "$user" -- test -x "$d" || { log "chmod o+x $d (for $user)"; chmod o+x "$d"; }
    done
}

mkdir -p "$VAR" "$PG_VAR" "$REDIS_VAR" "$CACHE" "$ES_VAR"/{data,logs,config,tmp}
ensure_traversable postgres "$PG_VAR"
ensure_traversable elasticsearch "$ES_VAR"

# wait_for TIMEOUT_S LOGFILE NAME CMD... : poll CMD every second; on timeout print the log tail and fail.
wait_for() {
    local timeout=$1 logfile=$2 name=$3; shift 3
    local deadline=$((SECONDS + timeout))
    until "$@" >/dev/null 2>&1; do
        if [ $SECONDS -ge $deadline ]; then
            log "$name did not come up within ${timeout}s; tail of $logfile:"
            tail -n 60 "$logfile" >&2 2>/dev/null || true
            die "$name failed to start"
        fi
        sleep 1
    done
}

# --- Elasticsearch: download + start first, it takes longest to boot ------------
# (GET / is the rest-root module, absent from the integ-test-zip; use _cluster/health.)
es_up() { curl -fsS "http://127.0.0.1:$ES_PORT/_cluster/health" >/dev/null 2>&1; }

if [ ! -x "$ES_HOME/bin/elasticsearch" ]; then
    zip=$CACHE/elasticsearch-$ES_VERSION.zip
    if [ ! -s "$zip" ]; then
        log "downloading $ES_ARTIFACT from Maven Central"
        # Run from $CACHE so mvn never picks up a project pom; use a private local
        # repo and drop its copy of the zip afterwards (saves ~110 MB of disk).
        (cd "$CACHE" && mvn -B -q -Dmaven.repo.local="$CACHE/m2" dependency:copy \
            -Dartifact="$ES_ARTIFACT" -Dtransitive=false -DoutputDirectory="$CACHE") \
            >"$CACHE/mvn.log" 2>&1 ||
            { cat "$CACHE/mvn.log" >&2; die "maven download of $ES_ARTIFACT failed"; }
        rm -rf "$CACHE/m2/org/elasticsearch/distribution"
    fi
    log "unpacking $zip"
    tmp=$(mktemp -d "$CACHE/.unpack.XXXXXX")
    unzip -q "$zip" -d "$tmp" || { rm -rf "$zip" "$tmp"; die "corrupt $zip removed; run again"; }
    rm -rf "$ES_HOME"
    mv "$tmp/elasticsearch-$ES_VERSION" "$ES_HOME"
    rmdir "$tmp"
fi
# The distribution stays pristine (root-owned, world-readable); the per-repo
# config dir (ES_PATH_CONF) under var/ is where ES may write (keystore etc.).
chmod -R a+rX "$ES_HOME"
ensure_traversable elasticsearch "$ES_HOME"

JAVA_HOME_DETECTED=$(dirname "$(dirname "$(readlink -f "$(command -v java)")")")
export ES_JAVA_HOME=${ES_JAVA_HOME:-$JAVA_HOME_DETECTED}
export ES_PATH_CONF=$ES_VAR/config
export ES_JAVA_OPTS=${ES_JAVA_OPTS:--Xms1g -Xmx1g}

es_running() {  # our ES process alive (it may still be booting)
    local pid
    pid=$(cat "$ES_VAR/es.pid" 2>/dev/null) && kill -0 "$pid" 2>/dev/null &&
        grep -q org.elasticsearch "/proc/$pid/cmdline" 2>/dev/null
}

es_pid=""
if es_up; then
    log "elasticsearch already answers on :$ES_PORT"
elif es_running; then
    log "elasticsearch is running (pid $(cat "$ES_VAR/es.pid")); waiting for it"
else
    # jvm.options/log4j2.properties come from the distribution; the yml is ours.
    cp "$ES_HOME/config/jvm.options" "$ES_HOME/config/log4j2.properties" "$ES_PATH_CONF/"
    mkdir -p "$ES_PATH_CONF/jvm.options.d"
    {
        echo "# generated by scripts/services-up.sh"
        echo "cluster.name: smartcircle"
        echo "node.name: smartcircle-dev"
        echo "path.data: $ES_VAR/data"
        echo "path.logs: $ES_VAR/logs"
        echo "network.host: 127.0.0.1"
        echo "http.port: $ES_PORT"
        echo "discovery.type: single-node"
        echo "action.destructive_requires_name: false"
        echo "cluster.routing.allocation.disk.threshold_enabled: false"
        # Only set module settings the distribution knows; unknown settings abort startup.
        [ -d "$ES_HOME/modules/x-pack-security" ] && echo "xpack.security.enabled: false"
        [ -d "$ES_HOME/modules/ingest-geoip" ] && echo "ingest.geoip.downloader.enabled: false"
        true
    } >"$ES_PATH_CONF/elasticsearch.yml"
    chown -R elasticsearch:elasticsearch "$ES_VAR"
    rm -f "$ES_VAR/es.pid"
    log "starting elasticsearch $ES_VERSION (java: $ES_JAVA_HOME)"
    # -d returns once the node has started (or failed); run it in the background
    # while PostgreSQL and Redis are brought up.
    (
        ulimit -n 65535 2>/dev/null || true  # ES warns below 65535 (harmless; capped by the hard limit)
        exec runuser -u elasticsearch -- env ES_JAVA_HOME="$ES_JAVA_HOME" ES_PATH_CONF="$ES_PATH_CONF" \
            ES_JAVA_OPTS="$ES_JAVA_OPTS" ES_TMPDIR="$ES_VAR/tmp" \
            "$ES_HOME/bin/elasticsearch" -d -p "$ES_VAR/es.pid"
    ) >"$ES_VAR/logs/startup.out" 2>&1 &
    es_pid=$!
fi

# --- PostgreSQL -----------------------------------------------------------------
as_pg() { (cd / && runuser -u postgres -- "$@"); }
pg_up() { "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT"; }

if pg_up; then
    log "postgres already answers on :$PG_PORT"
else
    chown postgres:postgres "$PG_VAR"
    chmod 700 "$PG_VAR"
    if [ ! -s "$PG_DATA/PG_VERSION" ]; then
        log "initdb $PG_DATA"
        as_pg "$PG_BIN/initdb" -D "$PG_DATA" -U postgres -E UTF8 --locale=C.UTF-8 \
            --auth-local=trust --auth-host=scram-sha-256 >"$PG_VAR/initdb.log"
    fi
    # Our settings live in an included file, rewritten on each start.
    cat >"$PG_DATA/smartcircle.conf" <<EOF
# generated by scripts/services-up.sh (test/dev settings: not crash-safe)
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '${PG_VAR//\'/\'\'}'
max_connections = 300
password_encryption = 'scram-sha-256'
fsync = off
synchronous_commit = off
full_page_writes = off
EOF
    grep -qx "include 'smartcircle.conf'" "$PG_DATA/postgresql.conf" ||
        echo "include 'smartcircle.conf'" >>"$PG_DATA/postgresql.conf"
    cat >"$PG_DATA/pg_hba.conf" <<EOF
# generated by scripts/services-up.sh
local all all                trust
host  all all 127.0.0.1/32   scram-sha-256
EOF
    chown postgres:postgres "$PG_DATA/smartcircle.conf" "$PG_DATA/pg_hba.conf"
    log "starting postgres ($PG_BIN)"
    as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$PG_VAR/postgres.log" -w -t 60 start >/dev/null ||
        { tail -n 40 "$PG_VAR/postgres.log" >&2; die "postgres failed to start"; }
fi
wait_for 60 "$PG_VAR/postgres.log" postgres pg_up

app_pg() { PGPASSWORD=smartcircle "$PG_BIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U smartcircle "$@"; }
if [ -S "$PG_VAR/.s.PGSQL.$PG_PORT" ]; then
    # Role and databases (idempotent), as the superuser over our private unix socket.
    as_pg "$PG_BIN/psql" -h "$PG_VAR" -p "$PG_PORT" -U postgres -d postgres -qAt -v ON_ERROR_STOP=1 <<'SQL' >/dev/null
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'smartcircle') THEN
        CREATE ROLE smartcircle LOGIN CREATEDB PASSWORD 'smartcircle';
    ELSE
        ALTER ROLE smartcircle LOGIN CREATEDB PASSWORD 'smartcircle';
    END IF;
END $$;
SELECT format('CREATE DATABASE %I OWNER smartcircle', d)
  FROM unnest(ARRAY['smartcircle', 'smartcircle_test']) AS d
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = d) \gexec
SQL

else
    # Another checkout's server on this port (e.g. a second clone on one machine): use it as is.
    app_pg -d smartcircle_test -qAt -c 'SELECT 1' >/dev/null ||
        die "something else answers on :$PG_PORT and refuses the smartcircle role"
    log "postgres on :$PG_PORT belongs to another checkout; using it"
fi

# --- Redis ----------------------------------------------------------------------
redis_up() { [ "$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null)" = PONG ]; }

if redis_up; then
    log "redis already answers on :$REDIS_PORT"
else
    cat >"$REDIS_VAR/redis.conf" <<EOF
# generated by scripts/services-up.sh
bind 127.0.0.1
port $REDIS_PORT
daemonize yes
dir "$REDIS_VAR"
pidfile "$REDIS_VAR/redis.pid"
logfile "$REDIS_VAR/redis.log"
save ""
appendonly no
EOF
    log "starting redis"
    redis-server "$REDIS_VAR/redis.conf"
fi
wait_for 30 "$REDIS_VAR/redis.log" redis redis_up

# --- wait for Elasticsearch ---------------------------------------------------------
es_log=$ES_VAR/logs/smartcircle.log
if [ -n "$es_pid" ] && ! wait "$es_pid"; then
    tail -n 60 "$ES_VAR/logs/startup.out" >&2 || true
    die "elasticsearch failed to start (logs: $ES_VAR/logs)"
fi
wait_for 180 "$es_log" elasticsearch \
    curl -fsS "http://127.0.0.1:$ES_PORT/_cluster/health?wait_for_status=yellow&timeout=60s"

# --- env file + status -------------------------------------------------------------
cat >"$VAR/env" <<EOF
export SMARTCIRCLE_PROFILE=services
export DATABASE_URL=postgres://smartcircle:smartcircle@127.0.0.1:$PG_PORT/smartcircle
export TEST_DATABASE_URL=postgres://smartcircle:smartcircle@127.0.0.1:$PG_PORT/smartcircle_test
export REDIS_URL=redis://127.0.0.1:$REDIS_PORT/0
export ELASTICSEARCH_URL=http://127.0.0.1:$ES_PORT
export SMARTCIRCLE_ES_HOME=$ES_HOME
export SMARTCIRCLE_ES_JAVA_HOME=$ES_JAVA_HOME
EOF

pg_ver=$(app_pg -d smartcircle -qAt -c 'SHOW server_version')
redis_ver=$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" info server | sed -n 's/^redis_version:\([^\r]*\).*/\1/p')
es_info=$(curl -fsS "http://127.0.0.1:$ES_PORT/_cluster/health")
es_status=$(sed -n 's/.*"status":"\([a-z]*\)".*/\1/p' <<<"$es_info")
es_ver=$(curl -fsS "http://127.0.0.1:$ES_PORT/_nodes/_local?filter_path=nodes.*.version" | sed -n 's/.*"version":"\([^"]*\)".*/\1/p')
echo "postgres      up  127.0.0.1:$PG_PORT  PostgreSQL $pg_ver  (dbs smartcircle, smartcircle_test)"
echo "redis         up  127.0.0.1:$REDIS_PORT  Redis $redis_ver"
echo "elasticsearch up  127.0.0.1:$ES_PORT   Elasticsearch $es_ver  (cluster $es_status)"
echo "env: source $VAR/env"
