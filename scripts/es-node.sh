#!/usr/bin/env bash
# Start or stop a private single-node Elasticsearch next to the shared one, for tests that stop
# and restart a real server (tests/test_search_outage.py). Uses the distribution that
# scripts/services-up.sh installed (SMARTCIRCLE_ES_HOME, SMARTCIRCLE_ES_JAVA_HOME from
# var/services/env). Data and logs under var/services/es-NAME; stop keeps the data.
#   es-node.sh start NAME HTTP_PORT     es-node.sh stop NAME
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
cmd=${1:?start|stop}
name=${2:?node name}
dir=$REPO/var/services/es-$name
pidfile=$dir/es.pid
die() { printf '[es-node] ERROR: %s\n' "$*" >&2; exit 1; }

case "$cmd" in
start)
    port=${3:?http port}
    es_home=${SMARTCIRCLE_ES_HOME:?run scripts/services-up.sh and source var/services/env}
    java_home=${SMARTCIRCLE_ES_JAVA_HOME:?run scripts/services-up.sh and source var/services/env}
    mkdir -p "$dir"/{data,logs,config,tmp}
    cp "$es_home/config/jvm.options" "$es_home/config/log4j2.properties" "$dir/config/"
    mkdir -p "$dir/config/jvm.options.d"
    {
        echo "cluster.name: smartcircle-$name"
        echo "node.name: $name"
        echo "path.data: $dir/data"
        echo "path.logs: $dir/logs"
        echo "network.host: 127.0.0.1"
        echo "http.port: $port"
        echo "transport.port: $((port + 100))"
        echo "discovery.type: single-node"
        echo "action.destructive_requires_name: false"
        echo "cluster.routing.allocation.disk.threshold_enabled: false"
        [ -d "$es_home/modules/x-pack-security" ] && echo "xpack.security.enabled: false"
        true
    } >"$dir/config/elasticsearch.yml"
    chown -R elasticsearch:elasticsearch "$dir"
    rm -f "$pidfile"
    (cd / && runuser -u elasticsearch -- env ES_JAVA_HOME="$java_home" ES_PATH_CONF="$dir/config" \
        ES_JAVA_OPTS="-Xms512m -Xmx512m" ES_TMPDIR="$dir/tmp" \
        "$es_home/bin/elasticsearch" -d -p "$pidfile") >"$dir/logs/startup.out" 2>&1 ||
        { tail -n 40 "$dir/logs/startup.out" >&2; die "elasticsearch $name did not start"; }
    for _ in $(seq 1 240); do
        if curl -fsS "http://127.0.0.1:$port/_cluster/health?wait_for_status=yellow&timeout=1s" \
            >/dev/null 2>&1; then
            exit 0
        fi
        sleep 0.5
    done
    tail -n 40 "$dir/logs/startup.out" >&2 || true
    die "elasticsearch $name did not answer on :$port"
    ;;
stop)
    [ -f "$pidfile" ] || exit 0
    pid=$(cat "$pidfile")
    kill "$pid" 2>/dev/null || exit 0
    for _ in $(seq 1 120); do
        kill -0 "$pid" 2>/dev/null || exit 0
        sleep 0.25
    done
    kill -9 "$pid" 2>/dev/null || true
    ;;
*) die "usage: es-node.sh start NAME HTTP_PORT | stop NAME" ;;
esac
