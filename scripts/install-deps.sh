#!/usr/bin/env bash
# Installs the Debian packages Apiary builds against. Idempotent: packages
# already present are skipped, and `apt-get update` runs only when something
# is missing. Never installs libboost1.81-dev (it removes the msgpack packages).
# libcpp-httplib-dev serves the dashboard and /metrics; chromium (headless) and
# python3-prometheus-client are what the dashboard's tests check it with;
# python3-dev and pybind11-dev build the Python package (python/);
# python3-torch, pytest and fortunes (a text corpus) run examples/torch;
# iproute2 (ip, tc) builds the benchmarks' capped links in network namespaces.
set -euo pipefail
packages=(
  build-essential cmake pkg-config ccache universal-ctags
  libasio-dev libsodium-dev libmsgpack-cxx-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  libopenblas-dev libcli11-dev libspdlog-dev nlohmann-json3-dev zlib1g-dev
  dataset-fashion-mnist
  libcpp-httplib-dev
  chromium python3-prometheus-client
  python3-dev pybind11-dev
  python3-torch python3-pytest python3-numpy fortunes iproute2
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "deps: all ${#packages[@]} packages present"
  exit 0
fi
echo "deps: installing ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
