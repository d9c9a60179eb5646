#!/usr/bin/env bash
# Installs Apiary into temporary prefixes and builds and runs an outside project
# (tests/package/consumer) against each: the tree's own build (with CUDA when it
# was configured with it) and, when that build has CUDA, a library-only build
# with -DAPIARY_CUDA=OFF.
# Usage: install_test.sh SOURCE_DIR BUILD_DIR WORK_DIR HAVE_CUDA(ON|OFF)
set -euo pipefail
src=$1 build=$2 work=$3 have_cuda=$4
rm -rf "$work" && mkdir -p "$work"
jobs=$(nproc)

consume() {  # consume NAME PREFIX EXPECTED_CUDA_BUILT
  local name=$1 prefix=$2 cuda=$3
  cmake -S "$src/tests/package/consumer" -B "$work/consumer-$name" -DCMAKE_PREFIX_PATH="$prefix" \
    -DCMAKE_BUILD_TYPE=Release >"$work/consumer-$name.log" 2>&1 ||
    { cat "$work/consumer-$name.log"; echo "FAIL: find_package(apiary) ($name)"; exit 1; }
  cmake --build "$work/consumer-$name" -j "$jobs" >>"$work/consumer-$name.log" 2>&1 ||
    { cat "$work/consumer-$name.log"; echo "FAIL: consumer build ($name)"; exit 1; }
  local out
  out=$("$work/consumer-$name/consumer")
  echo "$name: $out"
  [[ $out == *"run=outside target=256 sum=6.50"* ]] || { echo "FAIL: unexpected output ($name)"; exit 1; }
  [[ $out == *"cuda_built=$cuda"* ]] || { echo "FAIL: expected cuda_built=$cuda ($name)"; exit 1; }
}

cuda_on=$([ "$have_cuda" = ON ] && echo 1 || echo 0)
cmake --install "$build" --prefix "$work/prefix-tree" >"$work/install-tree.log"
consume tree "$work/prefix-tree" "$cuda_on"

# The Python package, where the installed tree puts it (when this build has it).
if [ -d "$build/python/apiary" ]; then
  site=$(ls -d "$work"/prefix-tree/lib/python3*/dist-packages)
  out=$(cd "$work" && PYTHONPATH="$site" /usr/bin/python3 -c \
    'import apiary, apiary.torch; print(apiary.__file__, apiary.__version__)')
  echo "python: $out"
  [[ $out == "$site/apiary/__init__.py"* ]] || { echo "FAIL: apiary imported from elsewhere"; exit 1; }
  help=$(cd "$work" && PATH=/usr/bin:/bin PYTHONPATH="$site" /usr/bin/python3 -m apiary --help)
  [[ $help == *coordinator* ]] || { echo "FAIL: python3 -m apiary --help"; exit 1; }
fi

if [ "$cuda_on" = 1 ]; then
  # The same sources without CUDA: libraries only (no tools, tests, benchmarks, examples).
  cmake -S "$src" -B "$work/build-nocuda" -DAPIARY_CUDA=OFF -DAPIARY_BUILD_TESTS=OFF \
    -DAPIARY_BUILD_BENCHMARKS=OFF -DAPIARY_BUILD_TOOLS=OFF -DAPIARY_BUILD_EXAMPLES=OFF \
    -DCMAKE_BUILD_TYPE=Release >"$work/build-nocuda.log" 2>&1
  cmake --build "$work/build-nocuda" -j "$jobs" >>"$work/build-nocuda.log" 2>&1 ||
    { tail -40 "$work/build-nocuda.log"; echo "FAIL: building without CUDA"; exit 1; }
  cmake --install "$work/build-nocuda" --prefix "$work/prefix-nocuda" >"$work/install-nocuda.log"
  consume nocuda "$work/prefix-nocuda" 0
else
  echo "this build has no CUDA (no nvcc found): only the CPU package was checked"
fi
echo "PASS"
