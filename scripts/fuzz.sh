#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (ASan + UBSan + libFuzzer, build-fuzz/)
# and runs each for SECONDS (default 60), one at a time, with -rss_limit_mb=512
# (a memory bomb is a finding) and the msgpack/JSON dictionaries. New inputs
# that add coverage are merged into tests/fuzz/corpus/<target>/; crashes, leaks,
# timeouts and out-of-memory inputs are written to tests/fuzz/crashes/<target>/,
# where the g++ build's ctest (Fuzz.<target>) replays them from then on.
#   scripts/fuzz.sh [SECONDS] [TARGET...]
#   FUZZ_RUNS=10000000 scripts/fuzz.sh 0 codec   # a fixed number of executions instead
# Prints per target: executions, coverage (cov: edges, ft: features), findings.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
seconds=${1:-60}
shift || true
build=${FUZZ_BUILD_DIR:-$root/build-fuzz}
fuzz_dir=$root/tests/fuzz

if [[ ! -f $build/CMakeCache.txt ]]; then
  CC=clang CXX=clang++ cmake -S "$root" -B "$build" -DAPIARY_BUILD_FUZZERS=ON -DAPIARY_CUDA=OFF \
    -DAPIARY_BUILD_TESTS=OFF -DAPIARY_BUILD_BENCHMARKS=OFF -DAPIARY_BUILD_TOOLS=OFF \
    -DAPIARY_BUILD_EXAMPLES=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
fi
cmake --build "$build" -j"${FUZZ_BUILD_JOBS:-2}" --target fuzzers >/dev/null

targets=("$@")
if [[ ${#targets[@]} -eq 0 ]]; then
  for exe in "$build"/tests/fuzz/fuzz_*; do targets+=("${exe##*/fuzz_}"); done
fi

dict_of() {
  case $1 in
    codec | rpc_frame | dht_wire | experts_wire) echo "-dict=$fuzz_dir/dict/msgpack.dict" ;;
    run_config) echo "-dict=$fuzz_dir/dict/json.dict" ;;
  esac
}

printf '%-22s %12s %8s %8s %s\n' target executions cov ft findings
for name in "${targets[@]}"; do
  exe=$build/tests/fuzz/fuzz_$name
  corpus=$fuzz_dir/corpus/$name
  crashes=$fuzz_dir/crashes/$name
  work=$(mktemp -d)
  mkdir -p "$corpus" "$crashes"
  limit=(-max_total_time="$seconds")
  [[ -n ${FUZZ_RUNS:-} ]] && limit=(-runs="$FUZZ_RUNS")
  log=$build/fuzz_$name.log
  # shellcheck disable=SC2046
  (cd "$work" && "$exe" "${limit[@]}" -rss_limit_mb=512 -timeout=10 -print_final_stats=1 \
    -artifact_prefix="$crashes/" $(dict_of "$name") "$work" "$corpus") >"$log" 2>&1 || true
  # Keep only the inputs that add coverage to the checked-in corpus.
  "$exe" -merge=1 -rss_limit_mb=512 "$corpus" "$work" >>"$log" 2>&1 || true
  rm -rf "$work"
  execs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*$' || true)
  last=$(grep -E '^#[0-9]+' "$log" | grep -v 'pulse' | grep ' cov: ' | tail -1 || true)
  cov=$(grep -o 'cov: [0-9]*' <<<"$last" | grep -o '[0-9]*' || true)
  ft=$(grep -o 'ft: [0-9]*' <<<"$last" | grep -o '[0-9]*' || true)
  findings=$(grep -c 'Test unit written to' "$log" || true)  # one per crash/leak/timeout/oom input
  printf '%-22s %12s %8s %8s %s\n' "$name" "${execs:-?}" "${cov:-?}" "${ft:-?}" \
    "$findings (log: ${log#"$root"/})"
done
