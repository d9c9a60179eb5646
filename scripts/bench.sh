#!/usr/bin/env bash
# make bench: every benchmark once at the sizes RESULTS.md reports, each
# printing its table; JSON objects are collected in BUILD_DIR/bench/*.json.
set -euo pipefail
BUILD_DIR=${1:-build}
B="$BUILD_DIR/benchmarks"
OUT="$BUILD_DIR/bench"
mkdir -p "$OUT"
run() {
  local name=$1; shift
  echo "== $name $*"
  "$B/$name" "$@"
  "$B/$name" "$@" --json > "$OUT/$name.json"
}
run bench_crypto --seconds 1
run bench_transport
run bench_kernels
run bench_dht --nodes 1024 --keys 16384 --kill-fraction 0.1
run bench_dht --nodes 128 --keys 2048 --transport tcp
run bench_allreduce --peers 4 --size 8388608 --link-mbps 100 --transport inproc --rounds 3
run bench_allreduce --peers 4 --size 8388608 --link-mbps 100 --transport inproc --compression 8bit --rounds 3
run bench_moe --quick
run bench_training
echo "JSON results in $OUT"
