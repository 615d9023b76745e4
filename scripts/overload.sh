#!/usr/bin/env bash
# Overload measurement: hits while a write flood exceeds the upstream limits.
set -u
cd "$(dirname "$0")/.."
mkdir -p "${OUT:-target/overload}"
cargo build --release --bin ddbcache --bin ddbcache-load
B=target/release
$B/ddbcache-load backend --listen 127.0.0.1:18001 >${OUT:-target/overload}/backend.log 2>&1 & BP=$!
sleep 1
$B/ddbcache --listen 127.0.0.1:18000 --admin-listen 127.0.0.1:19464 --upstream http://127.0.0.1:18001 \
  --max-upstream-requests 4 --max-queued-requests 8 --queue-timeout 50ms --log-level error >${OUT:-target/overload}/proxy.log 2>&1 & PP=$!
sleep 1
L="$B/ddbcache-load run --target proxy=http://127.0.0.1:18000 --metrics proxy=http://127.0.0.1:19464/metrics -q"
$L --workload get --table hot --keys 100 --seed --prime --connections 4 --duration 1s --warmup 0s >/dev/null 2>&1
$L --workload mixed --table flood --keys 1000 --seed --read-ratio 0 --connections 4 --duration 1s --warmup 0s >/dev/null 2>&1
echo "== hits alone"
$L --workload get --table hot --keys 100 --connections 4 --duration 10s --warmup 1s --json ${OUT:-target/overload}/hits-alone.json
echo "== hits during a write flood (64 connections, write-only)"
$L --workload mixed --table flood --keys 1000 --read-ratio 0 --connections 64 --duration 12s --warmup 0s --timeout 5s --json ${OUT:-target/overload}/flood.json > ${OUT:-target/overload}/flood.txt 2>&1 &
FP=$!
sleep 1
$L --workload get --table hot --keys 100 --connections 4 --duration 10s --warmup 0s --json ${OUT:-target/overload}/hits-flood.json
wait $FP
cat ${OUT:-target/overload}/flood.txt
echo "== write flood alone, without limits (proxy default limits)"
kill $PP; sleep 0.5
$B/ddbcache --listen 127.0.0.1:18000 --admin-listen 127.0.0.1:19464 --upstream http://127.0.0.1:18001 --log-level error >${OUT:-target/overload}/proxy2.log 2>&1 & PP=$!
sleep 1
$L --workload mixed --table flood --keys 1000 --read-ratio 0 --connections 64 --duration 10s --warmup 1s --timeout 5s
kill $PP $BP
