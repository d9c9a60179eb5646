#!/usr/bin/env bash
# Side by side: the same benchmarks from two build trees, alternated ROUNDS
# times (A B A B …) so drift in machine load hits both alike; prints the median
# of each figure for A and B and B/A. Take figures only on an idle machine
# (uptime load < 1.5): the load before and after is printed.
#   scripts/bench-ab.sh BUILD_A BUILD_B [ROUNDS]    (e.g. ../before/build build 5)
set -euo pipefail
A=${1:?usage: bench-ab.sh BUILD_A BUILD_B [ROUNDS]}
B=${2:?usage: bench-ab.sh BUILD_A BUILD_B [ROUNDS]}
ROUNDS=${3:-5}
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT

CASES=(
  "dht|bench_dht --nodes 128 --keys 2048 --transport tcp --json"
  "allreduce|bench_allreduce --transport tcp --peers 4 --size 67108864 --rounds 10 --json"
  "transport|bench_transport --bytes 1073741824 --json"
)

echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
for ((round = 1; round <= ROUNDS; round++)); do
  for side in A B; do
    dir=$A
    [[ $side == B ]] && dir=$B
    for entry in "${CASES[@]}"; do
      name=${entry%%|*}
      read -r -a command <<<"${entry#*|}"
      "$dir/benchmarks/${command[0]}" "${command[@]:1}" | tail -n 1 >>"$OUT/$side.$name.jsonl"
    done
  done
  echo "round $round/$ROUNDS done (load $(cut -d' ' -f1 /proc/loadavg))" >&2
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"

python3 - "$OUT" <<'EOF'
import json, pathlib, statistics, sys
out = pathlib.Path(sys.argv[1])
figures = {
    "dht": ["get_p50_ms", "get_p99_ms", "store_p50_ms", "store_phase_s"],
    "allreduce": ["seconds_p50", "algbw_gbps", "cpu_seconds_per_round"],
    "transport": ["plain_gbps", "encrypted_gbps", "transport_only_gbps", "handshakes_per_s",
                  "rtt_p50_us"],
}
print(f"{'benchmark':<10} {'figure':<24} {'A (median)':>12} {'B (median)':>12} {'B/A':>7}")
for name, keys in figures.items():
    runs = {side: [json.loads(l) for l in (out / f"{side}.{name}.jsonl").read_text().splitlines()]
            for side in "AB"}
    for key in keys:
        a = statistics.median(r[key] for r in runs["A"])
        b = statistics.median(r[key] for r in runs["B"])
        print(f"{name:<10} {key:<24} {a:>12.4g} {b:>12.4g} {b / a if a else float('nan'):>7.3f}")
EOF
