#!/usr/bin/env bash
# Side-by-side load benchmark of ddbcache (see docs/load-tool.md).
#
#   scripts/bench-compare.sh                      # 10 s per target, about 6-8 minutes in all
#   BENCH_DURATION=2s BENCH_NGINX=off scripts/bench-compare.sh   # CI smoke, about 2 minutes
#
# Builds release, then starts on loopback:
#   backend  dynoxide over HTTP (`ddbcache-load backend`)                  :8001
#   proxy    ddbcache --upstream http://127.0.0.1:8001 (admin/metrics :9464)  :8000
#   static   the same bytes as a real GetItem answer, no work (the ceiling)  :8002
#   static   the same bytes as a real Query answer                           :8004
#   nginx    one worker, proxy_cache keyed on X-Amz-Target + body, in front of
#            the backend (scripts/nginx/), if nginx is installed             :8003
# seeds the backend, and runs with ddbcache-load:
#   get        GetItem, 1 KB items: backend, proxy (warm), nginx (warm), static
#              ("warm": --prime reads every key once before the warm-up)
#   query      Query pages of 20 items: the same four
#   mixed      90 % GetItem / 10 % PutItem+UpdateItem: backend, proxy
#   write-only PutItem/UpdateItem only (every write goes upstream): backend, proxy
#   get-miss   GetItem of keys drawn from 100 M (nearly all misses): backend, proxy
#   cruddur    the Cruddur messaging mix: backend, proxy
# Each run prints its table; JSON goes to target/bench/, SVG plots to docs/bench-*.svg, and
# target/bench/summary.md gets the side-by-side table of all runs. Every process started here is
# stopped on exit.
#
# Environment (defaults in brackets):
#   BENCH_DURATION [10s]  measured time per target     BENCH_WARMUP [2s]  warm-up per target
#   BENCH_CONNECTIONS [16]  BENCH_THREADS [1] (load generator)  BENCH_KEYS [10000]
#   BENCH_PARTITIONS [1000] (query)  BENCH_ZIPF [0]  BENCH_NGINX [auto|off]  BENCH_CRUDDUR [1|0]
#   BENCH_OUT [target/bench]  BENCH_PLOTS [docs]
#   BENCH_PORT_PROXY [8000] BENCH_PORT_ADMIN [9464] BENCH_PORT_BACKEND [8001]
#   BENCH_PORT_STATIC [8002] BENCH_PORT_NGINX [8003] BENCH_PORT_STATIC_QUERY [8004]
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${BENCH_DURATION:-10s}
WARMUP=${BENCH_WARMUP:-2s}
CONNECTIONS=${BENCH_CONNECTIONS:-16}
THREADS=${BENCH_THREADS:-1}
KEYS=${BENCH_KEYS:-10000}
PARTITIONS=${BENCH_PARTITIONS:-1000}
ZIPF=${BENCH_ZIPF:-0}
NGINX=${BENCH_NGINX:-auto}
CRUDDUR=${BENCH_CRUDDUR:-1}
OUT=${BENCH_OUT:-target/bench}
PLOTS=${BENCH_PLOTS:-docs}
HOST=127.0.0.1
PORT_PROXY=${BENCH_PORT_PROXY:-8000}
PORT_ADMIN=${BENCH_PORT_ADMIN:-9464}
PORT_BACKEND=${BENCH_PORT_BACKEND:-8001}
PORT_STATIC=${BENCH_PORT_STATIC:-8002}
PORT_NGINX=${BENCH_PORT_NGINX:-8003}
PORT_STATIC_QUERY=${BENCH_PORT_STATIC_QUERY:-8004}

log() { printf '\n== %s\n' "$*" >&2; }
die() {
    printf 'bench-compare: %s\n' "$*" >&2
    exit 1
}

PIDS=()
TMP=$(mktemp -d "${TMPDIR:-/tmp}/ddbcache-bench.XXXXXX")
cleanup() {
    local status=$?
    for pid in "${PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 1 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    if [[ $status -ne 0 ]]; then
        for f in "$TMP"/*.log "$TMP"/nginx/error.log; do
            [[ -s $f ]] && { echo "--- $f (last lines)" >&2; tail -n 20 "$f" >&2; }
        done
    fi
    rm -rf "$TMP"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

port_open() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }

# start NAME COMMAND...: runs COMMAND in the background, logging to $TMP/NAME.log.
start() {
    local name=$1
    shift
    "$@" >"$TMP/$name.log" 2>&1 &
    PIDS+=("$!")
}

# wait_port PORT NAME: until something listens on PORT (the last started process must live).
wait_port() {
    local pid=${PIDS[-1]}
    for _ in $(seq 1 200); do
        port_open "$1" && return 0
        kill -0 "$pid" 2>/dev/null || die "$2 exited; see its log above"
        sleep 0.1
    done
    die "$2 is not listening on $HOST:$1 after 20 s"
}

USE_NGINX=0
if [[ $NGINX != off ]] && command -v nginx >/dev/null 2>&1; then
    USE_NGINX=1
elif [[ $NGINX == on ]]; then
    die "BENCH_NGINX=on but nginx is not installed"
fi

ports=("$PORT_PROXY" "$PORT_ADMIN" "$PORT_BACKEND" "$PORT_STATIC" "$PORT_STATIC_QUERY")
[[ $USE_NGINX == 1 ]] && ports+=("$PORT_NGINX")
for port in "${ports[@]}"; do
    port_open "$port" && die "port $port is in use; stop what listens there or set BENCH_PORT_*"
done

log "building (release)"
cargo build --release --bin ddbcache --bin ddbcache-load
BIN=${CARGO_TARGET_DIR:-target}/release
LOAD=$BIN/ddbcache-load
mkdir -p "$OUT" "$PLOTS"

log "starting dynoxide backend on :$PORT_BACKEND and the proxy on :$PORT_PROXY"
start backend "$LOAD" backend --listen "$HOST:$PORT_BACKEND" --exit-after 3h
wait_port "$PORT_BACKEND" backend
start proxy "$BIN/ddbcache" --listen "$HOST:$PORT_PROXY" --admin-listen "$HOST:$PORT_ADMIN" \
    --upstream "http://$HOST:$PORT_BACKEND" --log-level warn
wait_port "$PORT_PROXY" proxy
wait_port "$PORT_ADMIN" "proxy admin"

BACKEND=http://$HOST:$PORT_BACKEND
log "seeding the backend"
"$LOAD" seed --target "$BACKEND" --workload get --keys "$KEYS" --item-bytes 1024
"$LOAD" seed --target "$BACKEND" --workload query --keys "$PARTITIONS" --item-bytes 1024
"$LOAD" sample --target "$BACKEND" --workload get --keys "$KEYS" -o "$TMP/getitem.json"
"$LOAD" sample --target "$BACKEND" --workload query --keys "$PARTITIONS" -o "$TMP/query.json"
echo "GetItem answer: $(wc -c <"$TMP/getitem.json") bytes, Query answer: $(wc -c <"$TMP/query.json") bytes" >&2

log "starting the static servers on :$PORT_STATIC and :$PORT_STATIC_QUERY"
start static "$LOAD" static --listen "$HOST:$PORT_STATIC" --body-file "$TMP/getitem.json" --exit-after 3h
wait_port "$PORT_STATIC" static
start static-query "$LOAD" static --listen "$HOST:$PORT_STATIC_QUERY" --body-file "$TMP/query.json" \
    --exit-after 3h
wait_port "$PORT_STATIC_QUERY" static-query

NGINX_TARGET=()
if [[ $USE_NGINX == 1 ]]; then
    log "starting nginx proxy_cache on :$PORT_NGINX"
    mkdir -p "$TMP/nginx"
    # Run as root, nginx's worker is an unprivileged user: it must reach its cache directory.
    chmod 755 "$TMP" "$TMP/nginx"
    sed -e "s|@PREFIX@|$TMP/nginx|g" -e "s|@LISTEN@|$HOST:$PORT_NGINX|g" \
        -e "s|@UPSTREAM@|$HOST:$PORT_BACKEND|g" scripts/nginx/nginx.conf.template >"$TMP/nginx/nginx.conf"
    start nginx nginx -c "$TMP/nginx/nginx.conf" -p "$TMP/nginx" -e "$TMP/nginx/error.log"
    wait_port "$PORT_NGINX" nginx
    NGINX_TARGET=(--target "nginx=http://$HOST:$PORT_NGINX")
else
    log "nginx: skipped (BENCH_NGINX=$NGINX, installed: $(command -v nginx || echo no))"
fi

COMMON=(--connections "$CONNECTIONS" --threads "$THREADS" --duration "$DURATION" --warmup "$WARMUP"
    --pause 1s --zipf "$ZIPF" --metrics "proxy=http://$HOST:$PORT_ADMIN/metrics")
BOTH=(--target "backend=$BACKEND" --target "proxy=http://$HOST:$PORT_PROXY")
RUNS=()
# run LABEL ARGS...: one ddbcache-load run, its JSON into $OUT and its plot into $PLOTS.
run() {
    local label=$1
    shift
    log "run: $label"
    "$LOAD" run --label "$label" "${COMMON[@]}" "$@" --json "$OUT/$label.json" \
        --plot "$PLOTS/bench-$label.svg"
    RUNS+=("$OUT/$label.json")
}

# --prime reads every key once first, so the caches are warm from the first measured request.
run get --workload get --keys "$KEYS" --item-bytes 1024 --prime "${BOTH[@]}" "${NGINX_TARGET[@]}" \
    --target "static=http://$HOST:$PORT_STATIC"
run query --workload query --keys "$PARTITIONS" --item-bytes 1024 --prime "${BOTH[@]}" \
    "${NGINX_TARGET[@]}" --target "static=http://$HOST:$PORT_STATIC_QUERY"
run mixed --workload mixed --keys "$KEYS" --item-bytes 1024 --read-ratio 0.9 --prime "${BOTH[@]}"
run write-only --workload mixed --keys "$KEYS" --item-bytes 1024 --read-ratio 0 "${BOTH[@]}"
run get-miss --workload get --keys 100000000 --item-bytes 1024 "${BOTH[@]}"
if [[ $CRUDDUR == 1 ]]; then
    log "seeding cruddur"
    "$LOAD" seed --target "$BACKEND" --workload cruddur
    run cruddur --workload cruddur --prime "${BOTH[@]}"
fi

log "summary ($OUT/summary.md)"
"$LOAD" summary "${RUNS[@]}" -o "$OUT/summary.md"
