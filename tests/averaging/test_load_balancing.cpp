#include "averaging/load_balancing.hpp"

#include "core/error.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>
#include <vector>

using apiary::averaging::balance_parts;
using apiary::averaging::optimal_fractions;

namespace {

// Round time in the model of load_balancing.hpp (units of S).
double round_time(const std::vector<double>& w, const std::vector<double>& b) {
  const double n = static_cast<double>(w.size());
  double worst = 0;
  for (std::size_t i = 0; i < w.size(); ++i) {
    if (b[i] == 0) continue;  // client-mode peers are bounded by their owners' links
    worst = std::max(worst, (1 + (n - 2) * w[i]) / b[i]);
  }
  return worst;
}

}  // namespace

TEST(LoadBalancing, EqualBandwidthsGiveEqualParts) {
  std::vector<double> b(4, 100.0);
  auto parts = balance_parts(1000, b);
  EXPECT_EQ(parts, (std::vector<std::size_t>{250, 250, 250, 250}));
}

TEST(LoadBalancing, PartsSumExactlyWithRemainders) {
  std::vector<double> b{1, 1, 1};
  auto parts = balance_parts(1000, b);
  EXPECT_EQ(std::accumulate(parts.begin(), parts.end(), std::size_t{0}), 1000u);
  EXPECT_EQ(parts, (std::vector<std::size_t>{334, 333, 333}));  // ties to the lower index
  for (std::size_t total : {0u, 1u, 7u, 999983u}) {
    std::vector<double> odd{3.3, 0.7, 11.1, 5.0, 0.0};
    auto p = balance_parts(total, odd);
    EXPECT_EQ(std::accumulate(p.begin(), p.end(), std::size_t{0}), total);
    EXPECT_EQ(p[4], 0u);
  }
}

TEST(LoadBalancing, ZeroBandwidthPeersOwnNothing) {
  std::vector<double> b{0, 10, 0, 10};
  auto parts = balance_parts(100, b);
  EXPECT_EQ(parts, (std::vector<std::size_t>{0, 50, 0, 50}));
}

TEST(LoadBalancing, WaterFillingMatchesTheLinearProgram) {
  std::vector<double> b{100, 50, 10, 1};
  auto w = optimal_fractions(b);
  EXPECT_NEAR(std::accumulate(w.begin(), w.end(), 0.0), 1.0, 1e-12);
  // Owners finish at the same time; the slow peers are better off owning
  // nothing (their own traffic 1/b already exceeds what a share would save).
  EXPECT_GT(w[1], 0.0);
  EXPECT_EQ(w[2], 0.0);
  EXPECT_EQ(w[3], 0.0);
  const double n = 4;
  EXPECT_NEAR((1 + (n - 2) * w[0]) / b[0], (1 + (n - 2) * w[1]) / b[1], 1e-12);
  // No perturbation that keeps Σw = 1 improves the round time.
  const double best = round_time(w, b);
  for (std::size_t i = 0; i < 4; ++i) {
    for (std::size_t j = 0; j < 4; ++j) {
      if (i == j || w[i] < 1e-3) continue;
      auto moved = w;
      moved[i] -= 1e-3;
      moved[j] += 1e-3;
      EXPECT_GE(round_time(moved, b), best - 1e-12);
    }
  }
}

TEST(LoadBalancing, FasterPeersOwnMore) {
  std::vector<double> b{1, 2, 3, 4, 5, 6, 7, 8};
  auto parts = balance_parts(1 << 20, b);
  EXPECT_TRUE(std::is_sorted(parts.begin(), parts.end()));
  // τ = (n − 2 + k) / Σ top-k b = 12 / 33: peers with b ≤ 2 own nothing.
  EXPECT_EQ(parts[1], 0u);
  EXPECT_GT(parts[2], 0u);
  EXPECT_GT(parts.back(), parts[2]);
}

TEST(LoadBalancing, TwoPeersSplitProportionally) {
  std::vector<double> b{1, 3};
  EXPECT_EQ(balance_parts(400, b), (std::vector<std::size_t>{100, 300}));
}

TEST(LoadBalancing, SmallPartsAreMergedIntoOthers) {
  std::vector<double> b{100, 100, 2};
  auto parts = balance_parts(1000, b, /*min_part_elements=*/100);
  EXPECT_EQ(parts[2], 0u);
  EXPECT_EQ(parts[0] + parts[1], 1000u);
}

TEST(LoadBalancing, RejectsBadBandwidths) {
  std::vector<double> none{0, 0};
  EXPECT_THROW(balance_parts(10, none), apiary::Error);
  std::vector<double> negative{1, -1};
  EXPECT_THROW(balance_parts(10, negative), apiary::Error);
  std::vector<double> empty;
  EXPECT_THROW(balance_parts(10, empty), apiary::Error);
}
