#!/usr/bin/env bash
# make demo: the main job on this machine — a coordinator and 4 `apiary join`
# processes on loopback train the Fashion-MNIST MLP together to 85 % test
# accuracy (or stop at the time limit and say so). Writes build/demo/summary.json.
set -euo pipefail
BUILD_DIR=${1:-build}
exec "$BUILD_DIR/tools/apiary" demo --peers "${DEMO_PEERS:-4}" --out "$BUILD_DIR/demo" \
  --time-limit "${DEMO_TIME_LIMIT:-270}"
