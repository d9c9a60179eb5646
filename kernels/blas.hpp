#pragma once
// Matrix multiply: OpenBLAS sgemm on the CPU, cuBLAS on CUDA.
// Layout: row-major, like numpy. C[M×N] = alpha · op(A)[M×K] · op(B)[K×N] + beta · C.
// op(X) is X or Xᵀ per `trans_a` / `trans_b`; lda/ldb/ldc are the row strides of
// the matrices as stored (before op). All pointers must live on `device`.
// Errors: std::invalid_argument for inconsistent sizes, std::runtime_error when
// `device` is cuda and CUDA is unavailable or cuBLAS fails.
#include "kernels/device.hpp"

#include <cstddef>
#include <span>

namespace apiary::kernels {

enum class Transpose { no, yes };

struct GemmShape {
  std::size_t m = 0, n = 0, k = 0;
  Transpose trans_a = Transpose::no;
  Transpose trans_b = Transpose::no;
};

// Dense row-major operands: lda = (trans_a ? m : k), ldb = (trans_b ? k : n), ldc = n.
void gemm(const GemmShape& shape, float alpha, std::span<const float> a, std::span<const float> b,
          float beta, std::span<float> c, Device device = Device::cpu);

// y[rows×cols] += bias[cols] broadcast over rows.
void add_bias_rows(std::span<float> y, std::span<const float> bias, std::size_t rows,
                   std::size_t cols, Device device = Device::cpu);
// db[cols] = Σ_rows dy[rows×cols] (overwrites db). Fixed summation order.
void sum_rows(std::span<const float> dy, std::span<float> db, std::size_t rows, std::size_t cols,
              Device device = Device::cpu);

}  // namespace apiary::kernels
