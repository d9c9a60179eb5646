#include "experts/beam_search.hpp"

#include "core/error.hpp"
#include "experts/expert_uid.hpp"

#include <algorithm>
#include <limits>
#include <queue>
#include <unordered_set>

namespace apiary::experts {
namespace {

struct Node {
  double bound = 0.0;    // partial + best possible rest (exact score for a leaf)
  double partial = 0.0;  // score of the coordinates fixed so far
  std::string prefix;    // "ffn.3." (internal nodes)
  std::vector<std::uint32_t> coords;
  bool leaf = false;
  ExpertInfo expert;  // leaves only
};

struct NodeOrder {
  // Max-heap by bound; on ties leaves first so a search ends as early as possible.
  bool operator()(const Node& a, const Node& b) const {
    if (a.bound != b.bound) return a.bound < b.bound;
    return !a.leaf && b.leaf;
  }
};

struct SampleSearch {
  std::priority_queue<Node, std::vector<Node>, NodeOrder> frontier;
  std::vector<double> best_rest;  // best_rest[d] = Σ_{d' ≥ d} max scores[d']
  std::vector<ScoredExpert> found;
  std::vector<Node> expanding;
  bool done = false;
};

// A sample's search before any lookup: its scores checked against the grid, the
// best possible rest per level, and the root on the frontier.
SampleSearch start_search(const GridScores& scores, const std::vector<std::size_t>& grid,
                          const std::string& uid_prefix, std::size_t k) {
  const std::size_t dims = grid.size();
  if (scores.size() != dims) {
    throw Error(Errc::invalid_argument, "beam search: scores for " + std::to_string(scores.size()) +
                                            " dimensions, grid has " + std::to_string(dims));
  }
  SampleSearch search;
  search.best_rest.assign(dims + 1, 0.0);
  for (std::size_t d = dims; d-- > 0;) {
    if (scores[d].size() != grid[d]) {
      throw Error(Errc::invalid_argument, "beam search: dimension " + std::to_string(d) + " has " +
                                              std::to_string(scores[d].size()) +
                                              " scores, grid size is " + std::to_string(grid[d]));
    }
    double best = -std::numeric_limits<double>::infinity();
    for (float v : scores[d]) best = std::max(best, static_cast<double>(v));
    search.best_rest[d] = search.best_rest[d + 1] + best;
  }
  search.frontier.push(Node{search.best_rest[0], 0.0, uid_prefix, {}, false, {}});
  search.done = k == 0;
  return search;
}

// Pushes the fetched children of every node the search is expanding onto its
// frontier (leaves only when the directory's uid matches the path and it is not
// excluded).
void push_children(SampleSearch& search, const GridScores& scores,
                   const std::vector<std::size_t>& grid,
                   const std::unordered_map<std::string, PrefixChildren>& fetched,
                   const BeamSearcher::Exclude& exclude) {
  const std::size_t dims = grid.size();
  for (const auto& node : search.expanding) {
    const std::size_t level = node.coords.size();
    const auto& children = fetched.at(node.prefix);
    for (const auto& [coord, info] : children) {
      if (coord >= grid[level]) continue;
      Node child;
      child.partial = node.partial + scores[level][coord];
      child.coords = node.coords;
      child.coords.push_back(coord);
      if (level + 1 == dims) {
        if (info.uid != node.prefix + std::to_string(coord)) continue;
        if (exclude && exclude(info.uid)) continue;
        child.leaf = true;
        child.bound = child.partial;
        child.expert = info;
      } else {
        child.prefix = node.prefix + std::to_string(coord) + ".";
        child.bound = child.partial + search.best_rest[level + 1];
      }
      search.frontier.push(std::move(child));
    }
  }
}

}  // namespace

BeamSearcher::BeamSearcher(ExpertDirectory& directory, std::string uid_prefix,
                           std::vector<std::size_t> grid, BeamSearchOptions options)
    : directory_(directory),
      uid_prefix_(std::move(uid_prefix)),
      grid_(std::move(grid)),
      options_(options) {
  if (!is_valid_prefix(uid_prefix_) || prefix_level(uid_prefix_) != 0) {
    throw Error(Errc::invalid_argument,
                "beam search: grid prefix must look like 'ffn.', got '" + uid_prefix_ + "'");
  }
  if (grid_.empty() || grid_.size() > kMaxGridDims) {
    throw Error(Errc::invalid_argument, "beam search: grid needs 1 to 8 dimensions");
  }
  for (auto size : grid_) {
    if (size == 0 || size > kMaxGridIndex) {
      throw Error(Errc::invalid_argument, "beam search: grid dimension size out of range");
    }
  }
}

bool BeamSearcher::negatively_cached(const std::string& prefix,
                                     std::chrono::steady_clock::time_point now) {
  auto it = negative_cache_.find(prefix);
  if (it == negative_cache_.end()) return false;
  if (it->second <= now) {
    negative_cache_.erase(it);
    return false;
  }
  return true;
}

std::vector<ScoredExpert> BeamSearcher::find_best_experts(const GridScores& scores, std::size_t k) {
  return std::move(find_best_experts(std::span<const GridScores>(&scores, 1), k).front());
}

std::vector<std::vector<ScoredExpert>> BeamSearcher::find_best_experts(
    std::span<const GridScores> samples, std::size_t k, const Exclude& exclude) {
  const std::size_t beam =
      options_.beam_size == 0 ? std::max<std::size_t>(k, 1) : options_.beam_size;
  std::vector<SampleSearch> searches;
  searches.reserve(samples.size());
  for (const auto& scores : samples)
    searches.push_back(start_search(scores, grid_, uid_prefix_, k));

  // Children already fetched during this call (shared by all samples).
  std::unordered_map<std::string, PrefixChildren> fetched;
  while (true) {
    const auto now = std::chrono::steady_clock::now();
    std::vector<std::string> to_fetch;
    std::unordered_set<std::string> to_fetch_set;
    bool any_expanding = false;
    for (auto& search : searches) {
      search.expanding.clear();
      if (search.done) continue;
      // Leaves at the top are final: nothing left can score higher.
      while (!search.frontier.empty() && search.frontier.top().leaf && search.found.size() < k) {
        const auto& top = search.frontier.top();
        search.found.push_back(ScoredExpert{top.expert, top.coords, top.bound});
        search.frontier.pop();
      }
      if (search.found.size() >= k || search.frontier.empty()) {
        search.done = true;
        continue;
      }
      while (!search.frontier.empty() && !search.frontier.top().leaf &&
             search.expanding.size() < beam) {
        search.expanding.push_back(search.frontier.top());
        search.frontier.pop();
      }
      for (const auto& node : search.expanding) {
        any_expanding = true;
        if (fetched.count(node.prefix) || to_fetch_set.count(node.prefix)) continue;
        if (options_.negative_caching && negatively_cached(node.prefix, now)) {
          fetched.emplace(node.prefix, PrefixChildren{});
          continue;
        }
        to_fetch.push_back(node.prefix);
        to_fetch_set.insert(node.prefix);
      }
    }
    if (!any_expanding) break;
    if (!to_fetch.empty()) {
      ++lookups_;
      prefixes_requested_ += to_fetch.size();
      auto results = directory_.get_children(to_fetch);
      results.resize(to_fetch.size());  // a short answer means "nothing" for the rest
      for (std::size_t i = 0; i < to_fetch.size(); ++i) {
        if (results[i].empty() && options_.negative_caching) {
          negative_cache_[to_fetch[i]] = now + options_.negative_cache_ttl;
        }
        fetched.emplace(to_fetch[i], std::move(results[i]));
      }
    }
    for (std::size_t s = 0; s < searches.size(); ++s) {
      push_children(searches[s], samples[s], grid_, fetched, exclude);
    }
  }
  std::vector<std::vector<ScoredExpert>> out;
  out.reserve(searches.size());
  for (auto& search : searches) out.push_back(std::move(search.found));
  return out;
}

}  // namespace apiary::experts
