#!/usr/bin/env bash
# The GPU check, in one go (≤ 8 minutes on a machine with an NVIDIA GPU):
#   1. builds with APIARY_CUDA=ON (the CUDA kernels, the Python package);
#   2. runs every CUDA test (ctest -R '^(Cuda|FfnCuda)\.'), failing on a skip;
#   3. trains the char-LM with CUDA tensors through apiary.torch: 2 peers,
#      2 minutes, staged through pinned host memory (python/apiary/torch/flat.py);
#   4. writes one JSON summary (default $OUT/device-check.json, else build-cuda/).
# Without a device it says so and exits 0 after the build (step 1 only).
# Needs what scripts/install-deps.sh installs (Debian's -dev packages, python3-torch,
# pybind11-dev); a bare, pip-based GPU image has none of the C++ ones: bring them along.
# Usage: scripts/device-check.sh [BUILD_DIR]   (env: JOBS, SECONDS_PER_PEER=120)
set -uo pipefail
cd "$(dirname "$0")/.."
build=${1:-build-cuda}
jobs=${JOBS:-$(nproc)}
train_seconds=${SECONDS_PER_PEER:-120}
summary=${OUT:-$build}/device-check.json
mkdir -p "$(dirname "$summary")" "$build"
py=/usr/bin/python3
cuda_tests='^(Cuda|FfnCuda)\.'
deviceless_tests='^(Cuda\.UnavailableDeviceThrowsClearly|FfnCuda\.WithoutADeviceConstructionSaysWhy)$'
started=$(date +%s)

json_summary() {  # json_summary KEY=VALUE… (values are JSON)
  local body="" sep=""
  for kv in "$@"; do body+="$sep\"${kv%%=*}\": ${kv#*=}"; sep=", "; done
  echo "{$body}" | tee "$summary"
}

echo "device-check: building with APIARY_CUDA=ON in $build"
if ! { cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DAPIARY_CUDA=ON -DAPIARY_PYTHON=ON &&
  cmake --build "$build" -j "$jobs" --target test_kernels test_experts_unit apiary apiary_python; } \
  >"$build/device-check-build.log" 2>&1; then
  tail -30 "$build/device-check-build.log"
  json_summary build='"failed"' device=null
  exit 1
fi
build_s=$(($(date +%s) - started))

if ! nvidia-smi -L >/dev/null 2>&1; then
  echo "device-check: no NVIDIA device here (nvidia-smi -L failed): built in ${build_s} s, nothing to run"
  json_summary build='"ok"' build_s="$build_s" device=null
  exit 0
fi
device=$(nvidia-smi -L | head -1 | sed 's/"/\\"/g')
echo "device-check: $device"

# 2. CUDA tests: a skip here means the device was not used, which is a failure. The two tests
# of the device-less case (they skip where a device exists) are left out.
(cd "$build" && ctest -R "$cuda_tests" -E "$deviceless_tests" --output-on-failure -j 2) \
  >"$build/device-check-ctest.log" 2>&1
ctest_rc=$?
skipped=$(grep -c "Skipped" "$build/device-check-ctest.log" || true)
passed=$(grep -oE "[0-9]+ tests passed|[0-9]+% tests passed" "$build/device-check-ctest.log" | tail -1)
tests_ok=false
[ "$ctest_rc" -eq 0 ] && [ "$skipped" -eq 0 ] && tests_ok=true
tail -5 "$build/device-check-ctest.log"

# 3. The char-LM on CUDA tensors, 2 peers of one swarm.
export PYTHONPATH="$PWD/$build/python"
lm=examples/torch/charlm.py
common=(--optimizer apiary --device cuda --run device-check-$$ --batch-size 32
  --target-batch-size 64 --samples 1000000000 --json --threads 2 --log-every 50 --eval-windows 64)
timeout $((train_seconds + 60)) "$py" "$lm" "${common[@]}" --listen 127.0.0.1:0 --peer-index 0 \
  >"$build/peer0.log" 2>&1 &
peer0=$!
address=""
for _ in $(seq 120); do
  address=$(grep -o 'apiary://[^ ]*' "$build/peer0.log" | head -1)
  [ -n "$address" ] && break
  sleep 0.5
done
timeout $((train_seconds + 60)) "$py" "$lm" "${common[@]}" --peers "$address" --listen 127.0.0.1:0 \
  --peer-index 1 >"$build/peer1.log" 2>&1 &
peer1=$!
sleep "$train_seconds"
kill -INT "$peer0" "$peer1" 2>/dev/null
wait "$peer0" "$peer1" 2>/dev/null
last_epoch() { grep -oE 'epoch [0-9]+' "$1" | tail -1 | cut -d' ' -f2; }
e0=$(last_epoch "$build/peer0.log")
e1=$(last_epoch "$build/peer1.log")
lm_ok=false
[ -n "$address" ] && [ "${e0:-0}" -gt 1 ] && [ "${e1:-0}" -gt 1 ] && lm_ok=true
tail -3 "$build/peer0.log" "$build/peer1.log"

json_summary build='"ok"' build_s="$build_s" device="\"$device\"" cuda_tests_ok="$tests_ok" \
  cuda_tests="\"${passed:-none}\"" cuda_tests_skipped="$skipped" charlm_cuda_ok="$lm_ok" \
  charlm_epochs="[${e0:-null}, ${e1:-null}]" total_s="$(($(date +%s) - started))"
[ "$tests_ok" = true ] && [ "$lm_ok" = true ]
