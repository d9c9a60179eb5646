#include "kernels/blas.hpp"

#include "kernels/dispatch.hpp"

#include <cblas.h>

#include <algorithm>
#include <climits>

namespace apiary::kernels {

namespace {
void check_gemm(const GemmShape& s, std::size_t a, std::size_t b, std::size_t c) {
  detail::check_same_size(a, s.m * s.k, "gemm A");
  detail::check_same_size(b, s.k * s.n, "gemm B");
  detail::check_same_size(c, s.m * s.n, "gemm C");
  if (s.m > INT_MAX || s.n > INT_MAX || s.k > INT_MAX) {
    throw std::invalid_argument("gemm: dimensions exceed the BLAS int range");
  }
}
}  // namespace

void gemm(const GemmShape& s, float alpha, std::span<const float> a, std::span<const float> b,
          float beta, std::span<float> c, Device device) {
  check_gemm(s, a.size(), b.size(), c.size());
  if (s.m == 0 || s.n == 0) return;
  if (device == Device::cuda) {
    require_device(device);
    APIARY_CUDA_CALL(cuda::gemm(s, alpha, a.data(), b.data(), beta, c.data()));
    return;
  }
  const int m = static_cast<int>(s.m), n = static_cast<int>(s.n), k = static_cast<int>(s.k);
  const bool ta = s.trans_a == Transpose::yes, tb = s.trans_b == Transpose::yes;
  // Leading dimensions of the stored matrices (row-major): A is m×k (or k×m).
  const int lda = ta ? m : k;
  const int ldb = tb ? k : n;
  if (k == 0) {  // BLAS leaves C·beta; make that explicit for every backend
    for (float& v : c) v = beta == 0.0f ? 0.0f : v * beta;
    return;
  }
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, m, n,
              k, alpha, a.data(), lda, b.data(), ldb, beta, c.data(), n);
}

void add_bias_rows(std::span<float> y, std::span<const float> bias, std::size_t rows,
                   std::size_t cols, Device device) {
  detail::check_same_size(y.size(), rows * cols, "add_bias_rows y");
  detail::check_same_size(bias.size(), cols, "add_bias_rows bias");
  if (device == Device::cuda) {
    require_device(device);
    APIARY_CUDA_CALL(cuda::add_bias_rows(y.data(), bias.data(), rows, cols));
    return;
  }
  for (std::size_t r = 0; r < rows; ++r) {
    float* __restrict row = y.data() + r * cols;
    const float* __restrict b = bias.data();
    for (std::size_t j = 0; j < cols; ++j) row[j] += b[j];
  }
}

void sum_rows(std::span<const float> dy, std::span<float> db, std::size_t rows, std::size_t cols,
              Device device) {
  detail::check_same_size(dy.size(), rows * cols, "sum_rows dy");
  detail::check_same_size(db.size(), cols, "sum_rows db");
  if (device == Device::cuda) {
    require_device(device);
    APIARY_CUDA_CALL(cuda::sum_rows(dy.data(), db.data(), rows, cols));
    return;
  }
  std::fill(db.begin(), db.end(), 0.0f);
  for (std::size_t r = 0; r < rows; ++r) {
    const float* __restrict row = dy.data() + r * cols;
    float* __restrict out = db.data();
    for (std::size_t j = 0; j < cols; ++j) out[j] += row[j];
  }
}

}  // namespace apiary::kernels
