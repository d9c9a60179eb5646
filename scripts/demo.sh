#!/usr/bin/env bash
# make demo: until the collaborative optimizer lands, this starts two apiary
# peers on loopback, pings each one from a third (client-mode) peer over the
# encrypted transport, and stops them again.
set -euo pipefail
BUILD_DIR=${1:-build}
APIARY="$BUILD_DIR/tools/apiary"
if [[ ! -x "$APIARY" ]]; then
  echo "demo: $APIARY not found; run 'make build' first" >&2
  exit 1
fi

WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

# Starts `apiary node` and prints its address (the first line it writes).
start_node() {
  local name=$1
  "$APIARY" node --listen 127.0.0.1:0 >"$WORK/$name.out" 2>"$WORK/$name.log" &
  PIDS+=($!)
  for _ in $(seq 1 200); do
    if [[ -s "$WORK/$name.out" ]]; then
      head -n 1 "$WORK/$name.out"
      return 0
    fi
    sleep 0.05
  done
  echo "demo: $name did not print its address; its log:" >&2
  cat "$WORK/$name.log" >&2
  return 1
}

echo "== starting two peers on loopback"
ALICE=$(start_node alice)
BOB=$(start_node bob)
echo "alice: $ALICE"
echo "bob:   $BOB"

echo "== pinging each peer (handshake authenticates the peer id in the address)"
"$APIARY" ping "$ALICE" -n 20
"$APIARY" ping "$BOB" -n 20

echo "== stopping the peers"
cleanup
PIDS=()
trap - EXIT INT TERM
echo "demo: the collaborative training demo arrives with the optimizer (issue 5);"
echo "      meanwhile 'apiary train --solo' trains the same model alone."
