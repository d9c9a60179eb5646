#!/usr/bin/env bash
# compare_allreduce.sh — Apiary's butterfly all-reduce vs Open MPI's MPI_Allreduce
# on the same machine: 4 peers/ranks, 64 MiB of fp32 each, TCP loopback.
#
#   benchmarks/compare_allreduce.sh [BUILD_DIR] [PEERS] [BYTES]
#
# Needs Debian's openmpi-bin and libopenmpi-dev (mpicxx, mpirun); without them
# it measures Apiary only and says so. Prints one line per system and the
# ratio of Apiary's algbw to Open MPI's (target: >= 0.5). Note that Apiary's
# traffic is authenticated and encrypted (AES-256-GCM), Open MPI's is not.
set -euo pipefail

build_dir=${1:-build}
peers=${2:-4}
bytes=${3:-$((64 << 20))}
bench="$build_dir/benchmarks/bench_allreduce"
[[ -x "$bench" ]] || { echo "missing $bench (build the bench_allreduce target first)" >&2; exit 2; }

apiary_json=$("$bench" --transport tcp --peers "$peers" --size "$bytes" --rounds 5 --json)
apiary_algbw=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["algbw_gbps"])' "$apiary_json")
apiary_p50=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["seconds_p50"])' "$apiary_json")
printf 'apiary   %d peers %d bytes: p50 %.4f s, algbw %.3f GB/s\n' "$peers" "$bytes" "$apiary_p50" "$apiary_algbw"

if ! command -v mpicxx > /dev/null || ! command -v mpirun > /dev/null; then
  echo "openmpi  not installed (apt-get install openmpi-bin libopenmpi-dev); skipping the comparison"
  exit 0
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cat > "$work/allreduce.cpp" <<'CPP'
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
mpi_p50=$(mpirun --oversubscribe -np "$peers" --mca btl tcp,self --mca btl_tcp_if_include lo \
  "$work/allreduce" "$bytes")
mpi_algbw=$(python3 -c "print($bytes / $mpi_p50 / 1e9)")
printf 'openmpi  %d ranks %d bytes: p50 %.4f s, algbw %.3f GB/s\n' "$peers" "$bytes" "$mpi_p50" "$mpi_algbw"
python3 -c "print('ratio    apiary/openmpi algbw = %.2f (target >= 0.5)' % ($apiary_algbw / $mpi_algbw))"
