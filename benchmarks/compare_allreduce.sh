#!/usr/bin/env bash
# compare_allreduce.sh — Apiary's butterfly all-reduce vs Open MPI's MPI_Allreduce
# on the same machine, side by side: N processes each, fp32, TCP loopback.
#
#   benchmarks/compare_allreduce.sh [BUILD_DIR] [PEERS] [BYTES ...]
#
# Defaults: build, 4 peers/ranks, sizes 1 MiB 16 MiB 64 MiB. Installs Debian's
# openmpi-bin and libopenmpi-dev with apt-get when mpicxx/mpirun are missing
# (they are a benchmark-only dependency, not in scripts/install-deps.sh),
# builds a small MPI_Allreduce program, then for every size runs it
# (`mpirun --allow-run-as-root --oversubscribe --mca btl tcp,self -np N`) and
# `bench_allreduce --transport tcp` (one process per peer), and prints both
# and the ratio of Apiary's algbw to Open MPI's (target at 64 MiB: >= 0.5).
# Both report the median of 5 rounds after a warm-up. Note that Apiary's
# traffic is authenticated and encrypted (AES-256-GCM); Open MPI's is not.
set -euo pipefail

build_dir=${1:-build}
peers=${2:-4}
shift $(($# < 2 ? $# : 2))
sizes=("$@")
[[ ${#sizes[@]} -gt 0 ]] || sizes=($((1 << 20)) $((16 << 20)) $((64 << 20)))
bench="$build_dir/benchmarks/bench_allreduce"
[[ -x "$bench" ]] || { echo "missing $bench (build the bench_allreduce target first)" >&2; exit 2; }

if ! command -v mpicxx > /dev/null || ! command -v mpirun > /dev/null; then
  echo "installing openmpi-bin libopenmpi-dev (apt-get)" >&2
  sudo=""
  [[ $(id -u) -eq 0 ]] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get install -y -q --no-install-recommends openmpi-bin libopenmpi-dev > /dev/null ||
    { $sudo apt-get update -q > /dev/null &&
      $sudo apt-get install -y -q --no-install-recommends openmpi-bin libopenmpi-dev > /dev/null; }
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cat > "$work/allreduce.cpp" <<'CPP'
// MPI_Allreduce (sum, fp32, in place) of argv[1] bytes: median of 5 rounds after a warm-up.
#include <mpi.h>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>
int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  const long bytes = std::atol(argv[1]);
  std::vector<float> data(bytes / sizeof(float), 1.0f + rank);
  std::vector<double> seconds;
  for (int round = 0; round < 6; ++round) {
    MPI_Barrier(MPI_COMM_WORLD);
    const auto start = std::chrono::steady_clock::now();
    MPI_Allreduce(MPI_IN_PLACE, data.data(), static_cast<int>(data.size()), MPI_FLOAT, MPI_SUM,
                  MPI_COMM_WORLD);
    MPI_Barrier(MPI_COMM_WORLD);
    if (round > 0)
      seconds.push_back(
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  std::sort(seconds.begin(), seconds.end());
  if (rank == 0) std::printf("%.6f\n", seconds[seconds.size() / 2]);
  MPI_Finalize();
}
CPP
mpicxx -O2 -o "$work/allreduce" "$work/allreduce.cpp"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1

json_field() { python3 -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"; }

printf '%-12s %14s %14s %14s %14s %8s\n' bytes "openmpi p50 s" "openmpi GB/s" "apiary p50 s" \
  "apiary GB/s" ratio
for bytes in "${sizes[@]}"; do
  mpi_p50=$(mpirun --allow-run-as-root --oversubscribe --mca btl tcp,self \
    --mca btl_tcp_if_include lo -np "$peers" "$work/allreduce" "$bytes")
  mpi_algbw=$(python3 -c "print($bytes / $mpi_p50 / 1e9)")
  apiary_json=$("$bench" --transport tcp --peers "$peers" --size "$bytes" --rounds 5 --json)
  apiary_p50=$(json_field "$apiary_json" seconds_p50)
  apiary_algbw=$(json_field "$apiary_json" algbw_gbps)
  ratio=$(python3 -c "print('%.2f' % ($apiary_algbw / $mpi_algbw))")
  printf '%-12s %14.4f %14.3f %14.4f %14.3f %8s\n' "$bytes" "$mpi_p50" "$mpi_algbw" "$apiary_p50" \
    "$apiary_algbw" "$ratio"
  echo "apiary json: $apiary_json" >&2
done
echo "ratio = apiary algbw / openmpi algbw (target at 64 MiB, 4 processes: >= 0.5)"
