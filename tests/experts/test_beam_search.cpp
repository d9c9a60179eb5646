#include "core/error.hpp"
#include "experts/beam_search.hpp"
#include "fake_directory.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>

using namespace apiary;
using namespace apiary::experts;
using apiary::experts::testing::FakeDirectory;

namespace {

struct Grid16 {
  FakeDirectory directory;
  std::vector<std::pair<std::uint32_t, std::uint32_t>> present;
};

// A 16×16 grid with about a third of the experts missing, two rows empty and
// one ghost row (declared at the top level but with nothing under it).
void fill(Grid16& g, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::bernoulli_distribution keep(0.65);
  for (std::uint32_t i = 0; i < 16; ++i) {
    if (i == 4 || i == 9) continue;
    for (std::uint32_t j = 0; j < 16; ++j) {
      if (keep(rng)) {
        g.directory.declare("ffn." + std::to_string(i) + "." + std::to_string(j));
        g.present.emplace_back(i, j);
      }
    }
  }
  g.directory.declare_ghost("ffn.", 9);
}

GridScores random_scores(std::mt19937_64& rng, float spread) {
  std::normal_distribution<float> dist(0.0f, spread);
  GridScores s(2, std::vector<float>(16));
  for (auto& dim : s) {
    for (auto& v : dim) v = dist(rng);
  }
  return s;
}

std::vector<std::string> brute_force(const Grid16& g, const GridScores& s, std::size_t k) {
  std::vector<std::pair<double, std::string>> all;
  for (auto [i, j] : g.present) {
    all.emplace_back(double(s[0][i]) + s[1][j],
                     "ffn." + std::to_string(i) + "." + std::to_string(j));
  }
  std::sort(all.begin(), all.end(), [](auto& a, auto& b) { return a.first > b.first; });
  std::vector<std::string> out;
  for (std::size_t n = 0; n < std::min(k, all.size()); ++n) out.push_back(all[n].second);
  return out;
}

std::vector<std::string> uids(const std::vector<ScoredExpert>& found) {
  std::vector<std::string> out;
  for (auto& e : found) out.push_back(e.expert.uid);
  return out;
}

}  // namespace

TEST(BeamSearch, ExactTopKOnAGridWithMissingExperts) {
  for (std::uint64_t seed = 1; seed <= 5; ++seed) {
    Grid16 g;
    fill(g, seed);
    BeamSearcher searcher(g.directory, "ffn.", {16, 16});
    std::mt19937_64 rng(seed * 7);
    for (int trial = 0; trial < 40; ++trial) {
      // Large first-dimension spread makes greedy prefix choices wrong often.
      auto s = random_scores(rng, trial % 2 ? 3.0f : 0.5f);
      for (std::size_t k : {1u, 4u, 16u}) {
        auto found = searcher.find_best_experts(s, k);
        ASSERT_EQ(uids(found), brute_force(g, s, k)) << "seed " << seed << " trial " << trial;
        for (std::size_t n = 1; n < found.size(); ++n) {
          EXPECT_GE(found[n - 1].score, found[n].score);
        }
        for (auto& e : found) {
          EXPECT_EQ(e.coords.size(), 2u);
          EXPECT_FLOAT_EQ(float(e.score), s[0][e.coords[0]] + s[1][e.coords[1]]);
        }
      }
    }
  }
}

TEST(BeamSearch, BatchedSearchMatchesPerSampleAndSharesLookups) {
  Grid16 g;
  fill(g, 42);
  std::mt19937_64 rng(3);
  std::vector<GridScores> samples;
  for (int i = 0; i < 32; ++i) samples.push_back(random_scores(rng, 1.0f));
  BeamSearcher batched(g.directory, "ffn.", {16, 16});
  auto together = batched.find_best_experts(samples, 4);
  const auto batched_calls = g.directory.calls;
  for (std::size_t i = 0; i < samples.size(); ++i) {
    EXPECT_EQ(uids(together[i]), brute_force(g, samples[i], 4)) << i;
  }
  // Each round is one directory call for all 32 samples; a handful of rounds suffice.
  EXPECT_LE(batched_calls, 6u);
  EXPECT_GE(batched_calls, 2u);
}

TEST(BeamSearch, EmptyPrefixesAreNegativelyCached) {
  FakeDirectory directory;
  directory.declare("ffn.0.0");
  directory.declare("ffn.0.1");
  directory.declare_ghost("ffn.", 1);  // stale row: prefix "ffn.1." is empty
  BeamSearcher searcher(directory, "ffn.", {2, 2});
  // Row 1 scores best, so the search must look under "ffn.1." first.
  GridScores s{{0.0f, 5.0f}, {1.0f, 0.0f}};
  EXPECT_EQ(uids(searcher.find_best_experts(s, 1)), (std::vector<std::string>{"ffn.0.0"}));
  auto count_asks = [&](const std::string& p) {
    return std::count(directory.asked.begin(), directory.asked.end(), p);
  };
  EXPECT_EQ(count_asks("ffn.1."), 1);
  EXPECT_EQ(uids(searcher.find_best_experts(s, 2)),
            (std::vector<std::string>{"ffn.0.0", "ffn.0.1"}));
  EXPECT_EQ(count_asks("ffn.1."), 1);  // answered from the negative cache
  searcher.clear_negative_cache();
  searcher.find_best_experts(s, 1);
  EXPECT_EQ(count_asks("ffn.1."), 2);
}

TEST(BeamSearch, IgnoresEntriesOutsideTheGridOrWithWrongUids) {
  struct Hostile : ExpertDirectory {
    std::vector<PrefixChildren> get_children(std::span<const std::string> prefixes) override {
      std::vector<PrefixChildren> out;
      for (auto& p : prefixes) {
        PrefixChildren c;
        if (p == "ffn.") {
          c[0] = {"ffn.0.0", {}};
          c[7] = {"ffn.7.0", {}};  // outside a grid of size 2
        } else if (p == "ffn.0.") {
          c[0] = {"ffn.0.0", {}};
          c[1] = {"evil.0.1", {}};  // uid does not match its place
        }
        out.push_back(c);
      }
      return out;
    }
  } hostile;
  BeamSearcher searcher(hostile, "ffn.", {2, 2});
  GridScores s{{1.0f, 0.0f}, {0.0f, 1.0f}};
  EXPECT_EQ(uids(searcher.find_best_experts(s, 2)), (std::vector<std::string>{"ffn.0.0"}));
}

TEST(BeamSearch, ValidatesScores) {
  FakeDirectory directory;
  BeamSearcher searcher(directory, "ffn.", {4, 4});
  EXPECT_THROW(searcher.find_best_experts(GridScores{{0, 0, 0, 0}}, 1), Error);
  EXPECT_THROW(searcher.find_best_experts(GridScores{{0, 0, 0}, {0, 0, 0, 0}}, 1), Error);
  EXPECT_THROW(BeamSearcher(directory, "ffn", {4}), Error);
  EXPECT_TRUE(searcher.find_best_experts(GridScores{{0, 0, 0, 0}, {0, 0, 0, 0}}, 3).empty());
}
