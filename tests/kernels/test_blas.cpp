#include "kernels/blas.hpp"

#include <gtest/gtest.h>

#include <random>
#include <vector>

using namespace apiary::kernels;

namespace {
std::vector<float> random_values(std::size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}
}  // namespace

TEST(Gemm, AllTransposeCombinationsMatchNaive) {
  const std::size_t m = 7, n = 5, k = 9;
  for (auto ta : {Transpose::no, Transpose::yes}) {
    for (auto tb : {Transpose::no, Transpose::yes}) {
      auto a = random_values(m * k, 1), b = random_values(k * n, 2), c = random_values(m * n, 3);
      auto expected = c;
      for (std::size_t i = 0; i < m; ++i) {
        for (std::size_t j = 0; j < n; ++j) {
          double acc = 0.0;
          for (std::size_t l = 0; l < k; ++l) {
            float av = ta == Transpose::yes ? a[l * m + i] : a[i * k + l];
            float bv = tb == Transpose::yes ? b[j * k + l] : b[l * n + j];
            acc += double(av) * bv;
          }
          expected[i * n + j] = float(2.0 * acc + 0.5 * c[i * n + j]);
        }
      }
      gemm({m, n, k, ta, tb}, 2.0f, a, b, 0.5f, c);
      for (std::size_t i = 0; i < c.size(); ++i) ASSERT_NEAR(c[i], expected[i], 1e-4);
    }
  }
  std::vector<float> a(3), b(3), c(3);
  EXPECT_THROW(gemm({2, 2, 2}, 1.0f, a, b, 0.0f, c), std::invalid_argument);
}

TEST(Gemm, BiasHelpers) {
  std::vector<float> y = {1, 2, 3, 4, 5, 6}, bias = {10, 20, 30}, db(3);
  add_bias_rows(y, bias, 2, 3);
  EXPECT_EQ(y, (std::vector<float>{11, 22, 33, 14, 25, 36}));
  sum_rows(y, db, 2, 3);
  EXPECT_EQ(db, (std::vector<float>{25, 47, 69}));
}
