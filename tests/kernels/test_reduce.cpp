#include "kernels/reduce.hpp"

#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <random>
#include <vector>

using namespace apiary::kernels;

namespace {
std::vector<float> random_values(std::size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, 3.0f);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

struct ThreadSetting {  // restores the thread count after a test
  unsigned saved = cpu_threads();
  ~ThreadSetting() { set_cpu_threads(saved); }
};
}  // namespace

TEST(Reduce, WeightedAccumulateAndScale) {
  std::vector<float> acc = {1, 2, 3}, x = {10, 20, 30};
  weighted_accumulate(acc, x, 0.5f);
  EXPECT_EQ(acc, (std::vector<float>{6, 12, 18}));
  scale(acc, 0.5f);
  EXPECT_EQ(acc, (std::vector<float>{3, 6, 9}));
  std::vector<float> short_x = {1};
  EXPECT_THROW(weighted_accumulate(acc, short_x, 1.0f), std::invalid_argument);
}

TEST(Reduce, SumsAreAccurate) {
  auto v = random_values(100003, 1);
  double reference = 0.0, reference_sq = 0.0;
  for (float x : v) {
    reference += x;
    reference_sq += double(x) * x;
  }
  EXPECT_NEAR(sum(v), reference, 1e-3 * std::sqrt(reference_sq));
  EXPECT_NEAR(sum_squares(v), reference_sq, 1e-5 * reference_sq);
  EXPECT_EQ(sum(std::span<const float>{}), 0.0f);
  std::vector<float> small = {1.0f, 2.0f, 3.5f};
  EXPECT_EQ(sum(small), 6.5f);
  EXPECT_EQ(sum_squares(small), 17.25f);
}

TEST(Reduce, BitIdenticalAcrossRunsAndThreadCounts) {
  ThreadSetting restore;
  // Large enough to be split over threads; odd length leaves a ragged last block.
  auto v = random_values((std::size_t{3} << 20) + 12345, 7);
  set_cpu_threads(1);
  const float s1 = sum(v), q1 = sum_squares(v);
  for (unsigned threads : {1u, 2u, 3u, 5u, 8u}) {
    set_cpu_threads(threads);
    for (int run = 0; run < 2; ++run) {
      EXPECT_EQ(std::bit_cast<std::uint32_t>(sum(v)), std::bit_cast<std::uint32_t>(s1)) << threads;
      EXPECT_EQ(std::bit_cast<std::uint32_t>(sum_squares(v)), std::bit_cast<std::uint32_t>(q1));
    }
  }
}

TEST(Reduce, ThreadedAccumulateMatchesSingleThread) {
  ThreadSetting restore;
  auto x = random_values((std::size_t{2} << 20) + 77, 3);
  auto base = random_values(x.size(), 4);
  set_cpu_threads(1);
  auto a = base;
  weighted_accumulate(a, x, 0.3f);
  set_cpu_threads(4);
  auto b = base;
  weighted_accumulate(b, x, 0.3f);
  EXPECT_EQ(a, b);
  for (std::size_t i = 0; i < x.size(); i += 4099) ASSERT_EQ(a[i], base[i] + 0.3f * x[i]);
}

TEST(Reduce, CopyAndFill) {
  std::vector<float> src = random_values(1000, 9), dst(1000);
  copy(dst, src);
  EXPECT_EQ(dst, src);
  fill(dst, 2.5f);
  for (float v : dst) ASSERT_EQ(v, 2.5f);
}
