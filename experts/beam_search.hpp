#pragma once
// Finding the best experts on a grid without listing it. An expert's score is
// the sum over grid dimensions of the gate's score for its coordinate
// (ffn.i.j → s₀[i] + s₁[j]); only experts somebody declared count.
//
// The search is a batched best-first (A*) walk over prefixes: a prefix's bound
// is its partial score plus the best possible score of the remaining
// dimensions, which never underestimates, so experts come out in exact
// descending order — even when parts of the grid are missing, where a plain
// level-by-level beam can miss the best expert. Each round expands up to
// `beam_size` of the most promising prefixes per sample, for all samples of a
// batch in one directory lookup; with a full grid that is one round per
// dimension, like hivemind's beam search. Prefixes found empty are negatively
// cached for `negative_cache_ttl` and never asked again meanwhile.
//
// Entries from the directory are untrusted: coordinates outside the grid and
// leaf uids that are not exactly <prefix><coord> are ignored.
// Threading: not thread-safe; use one searcher per client thread.
// Errors: throws apiary::Error{invalid_argument} for scores that do not match the grid.
#include "experts/directory.hpp"

#include <chrono>
#include <cstddef>
#include <functional>
#include <string>
#include <unordered_map>
#include <vector>

namespace apiary::experts {

struct BeamSearchOptions {
  std::size_t beam_size = 0;  // prefixes expanded per sample and round; 0 = k
  bool negative_caching = true;
  std::chrono::milliseconds negative_cache_ttl{30000};
};

struct ScoredExpert {
  ExpertInfo expert;
  std::vector<std::uint32_t> coords;
  double score = 0.0;
};

// Per grid dimension d, scores[d][i] for coordinate i.
using GridScores = std::vector<std::vector<float>>;

class BeamSearcher {
 public:
  // `uid_prefix` is the grid's name with its dot ("ffn."); grid[d] the size of dimension d.
  BeamSearcher(ExpertDirectory& directory, std::string uid_prefix, std::vector<std::size_t> grid,
               BeamSearchOptions options = {});

  // Up to k experts per sample, best first. Experts for which `exclude` returns
  // true (e.g. recently failed ones) are passed over.
  using Exclude = std::function<bool(const std::string& uid)>;
  std::vector<std::vector<ScoredExpert>> find_best_experts(std::span<const GridScores> samples,
                                                           std::size_t k,
                                                           const Exclude& exclude = {});
  std::vector<ScoredExpert> find_best_experts(const GridScores& scores, std::size_t k);

  const std::vector<std::size_t>& grid() const noexcept { return grid_; }
  const std::string& uid_prefix() const noexcept { return uid_prefix_; }
  // Statistics (tests, metrics): directory calls and prefixes asked so far.
  std::size_t lookups() const noexcept { return lookups_; }
  std::size_t prefixes_requested() const noexcept { return prefixes_requested_; }
  void clear_negative_cache() { negative_cache_.clear(); }

 private:
  bool negatively_cached(const std::string& prefix, std::chrono::steady_clock::time_point now);

  ExpertDirectory& directory_;
  std::string uid_prefix_;
  std::vector<std::size_t> grid_;
  BeamSearchOptions options_;
  std::unordered_map<std::string, std::chrono::steady_clock::time_point> negative_cache_;
  std::size_t lookups_ = 0;
  std::size_t prefixes_requested_ = 0;
};

}  // namespace apiary::experts
