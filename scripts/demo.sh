#!/usr/bin/env bash
# make demo: the main job on this machine. Until the collaborative optimizer
# lands this starts two apiary peers on loopback and pings between them.
set -euo pipefail
BUILD_DIR=${1:-build}
APIARY="$BUILD_DIR/tools/apiary"
echo "demo: the collaborative training demo is not built yet (issue 5); showing two peers instead"
"$APIARY" --help
