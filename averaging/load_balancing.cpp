#include "averaging/load_balancing.hpp"

#include "core/error.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace apiary::averaging {
namespace {

void check_bandwidths(std::span<const double> bandwidths) {
  if (bandwidths.empty()) throw Error(Errc::invalid_argument, "load balancing: empty group");
  bool any_positive = false;
  for (double b : bandwidths) {
    if (!std::isfinite(b) || b < 0)
      throw Error(Errc::invalid_argument, "load balancing: bandwidth must be finite and >= 0");
    any_positive = any_positive || b > 0;
  }
  if (!any_positive)
    throw Error(Errc::invalid_argument, "load balancing: no peer has a positive bandwidth");
}

std::vector<double> proportional(std::span<const double> bandwidths) {
  const double sum = std::accumulate(bandwidths.begin(), bandwidths.end(), 0.0);
  std::vector<double> fractions(bandwidths.size());
  for (std::size_t i = 0; i < bandwidths.size(); ++i) fractions[i] = bandwidths[i] / sum;
  return fractions;
}

// Largest-remainder rounding of total·fractions; ties go to the lower index.
std::vector<std::size_t> round_parts(std::size_t total, const std::vector<double>& fractions) {
  const std::size_t n = fractions.size();
  std::vector<std::size_t> parts(n);
  std::vector<double> remainders(n);
  std::size_t assigned = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const double exact = static_cast<double>(total) * fractions[i];
    parts[i] = std::min<std::size_t>(static_cast<std::size_t>(std::floor(exact)), total);
    remainders[i] = exact - static_cast<double>(parts[i]);
    assigned += parts[i];
  }
  // Floating-point sums may overshoot by a few elements: take them back from
  // the largest parts (deterministically).
  while (assigned > total) {
    auto largest = std::max_element(parts.begin(), parts.end());
    --*largest;
    --assigned;
  }
  std::vector<std::size_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](std::size_t a, std::size_t b) { return remainders[a] > remainders[b]; });
  for (std::size_t k = 0; assigned < total; k = (k + 1) % n) {
    // Only peers with a positive fraction may receive leftover elements.
    if (fractions[order[k]] > 0) {
      ++parts[order[k]];
      ++assigned;
    }
  }
  return parts;
}

}  // namespace

std::vector<double> optimal_fractions(std::span<const double> bandwidths) {
  check_bandwidths(bandwidths);
  const std::size_t n = bandwidths.size();
  if (n <= 2) return proportional(bandwidths);

  std::vector<std::size_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](std::size_t a, std::size_t b) { return bandwidths[a] > bandwidths[b]; });
  // Grow the set of owners while the next peer would still get a positive share.
  const double nm2 = static_cast<double>(n - 2);
  double top_sum = 0;
  double tau = 0;
  for (std::size_t k = 0; k < n; ++k) {
    const double b = bandwidths[order[k]];
    if (b <= 0) break;
    const double candidate_tau = (nm2 + static_cast<double>(k + 1)) / (top_sum + b);
    if (k > 0 && candidate_tau * b <= 1.0) break;
    top_sum += b;
    tau = candidate_tau;
  }
  std::vector<double> fractions(n, 0.0);
  double sum = 0;
  for (std::size_t i = 0; i < n; ++i) {
    fractions[i] = std::max(0.0, (tau * bandwidths[i] - 1.0) / nm2);
    sum += fractions[i];
  }
  if (sum <= 0) {
    // Only one peer can reduce (every other bandwidth is 0): it owns everything.
    fractions[order[0]] = 1.0;
    sum = 1.0;
  }
  for (double& f : fractions) f /= sum;  // remove rounding drift
  return fractions;
}

std::vector<std::size_t> balance_parts(std::size_t total_elements,
                                       std::span<const double> bandwidths,
                                       std::size_t min_part_elements) {
  std::vector<double> fractions = optimal_fractions(bandwidths);
  std::vector<std::size_t> parts = round_parts(total_elements, fractions);
  // Drop the smallest too-small part and re-balance among the rest, until every
  // non-empty part is large enough (or only one owner is left).
  while (true) {
    std::size_t smallest = parts.size();
    std::size_t owners = 0;
    for (std::size_t i = 0; i < parts.size(); ++i) {
      if (parts[i] == 0) continue;
      ++owners;
      if (parts[i] < min_part_elements && (smallest == parts.size() || parts[i] < parts[smallest]))
        smallest = i;
    }
    if (smallest == parts.size() || owners <= 1) break;
    std::vector<double> reduced(bandwidths.begin(), bandwidths.end());
    for (std::size_t i = 0; i < parts.size(); ++i)
      if (parts[i] == 0 || i == smallest) reduced[i] = 0;
    fractions = optimal_fractions(reduced);
    parts = round_parts(total_elements, fractions);
  }
  return parts;
}

}  // namespace apiary::averaging
