#include "optimizer/adaptive_deadline.hpp"

#include <algorithm>
#include <cmath>
#include <vector>

namespace apiary::optimizer {

AdaptiveDeadline::AdaptiveDeadline(DeadlinePolicy policy)
    : policy_(policy),
      current_(std::clamp(policy.initial_seconds, policy.min_seconds, policy.max_seconds)) {}

void AdaptiveDeadline::record_success(double seconds) {
  if (!(seconds >= 0) || !std::isfinite(seconds)) return;
  recent_.push_back(seconds);
  while (recent_.size() > policy_.window) recent_.pop_front();
  consecutive_timeouts_ = 0;
  recompute();
}

void AdaptiveDeadline::record_timeout() {
  ++consecutive_timeouts_;
  current_ = std::min(policy_.max_seconds, current_ * 2.0);
}

void AdaptiveDeadline::recompute() {
  std::vector<double> sorted(recent_.begin(), recent_.end());
  std::sort(sorted.begin(), sorted.end());
  const double pos = policy_.quantile * static_cast<double>(sorted.size() - 1);
  const auto lo = static_cast<std::size_t>(std::floor(pos));
  const auto hi = std::min(lo + 1, sorted.size() - 1);
  const double q = sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - static_cast<double>(lo));
  current_ = std::clamp(q * policy_.safety_factor, policy_.min_seconds, policy_.max_seconds);
}

}  // namespace apiary::optimizer
