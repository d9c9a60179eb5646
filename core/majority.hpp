#pragma once
// Votes of strangers on "how far along are we": the newest epoch that more
// than half (or at least half) of the voters have reached (epoch >= E). A
// minority claiming a later epoch cannot move it; a majority can. Used for state downloads
// (averaging/state_vote) and progress reports (optimizer/progress_estimate).
#include <algorithm>
#include <cstdint>
#include <functional>
#include <optional>
#include <vector>

namespace apiary {

// The newest epoch reached by at least `voters` of them (1 <= voters <= size).
inline std::uint64_t newest_reached_by(std::vector<std::uint64_t> epochs, std::size_t voters) {
  // Sorted newest first, the voters-th newest is reached by `voters` of them.
  const auto at = epochs.begin() + static_cast<std::ptrdiff_t>(voters - 1);
  std::nth_element(epochs.begin(), at, epochs.end(), std::greater<>());
  return *at;
}

// Reached by more than half; nullopt when there are no votes.
inline std::optional<std::uint64_t> majority_reached(std::vector<std::uint64_t> epochs) {
  if (epochs.empty()) return std::nullopt;
  const std::size_t voters = epochs.size() / 2 + 1;
  return newest_reached_by(std::move(epochs), voters);
}

// Reached by at least half (a tie counts); nullopt when there are no votes.
inline std::optional<std::uint64_t> half_reached(std::vector<std::uint64_t> epochs) {
  if (epochs.empty()) return std::nullopt;
  const std::size_t voters = (epochs.size() + 1) / 2;
  return newest_reached_by(std::move(epochs), voters);
}

}  // namespace apiary
