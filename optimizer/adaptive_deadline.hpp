#pragma once
// Adaptive deadlines for matchmaking and all-reduce rounds.
//
// Fixed timeouts are guesses (hivemind #676): too short and slow links fail
// every round, too long and a dead peer stalls everyone. The deadline follows
// the measured duration of recent successful rounds: a high quantile of the
// last `window` durations times a safety factor, clamped to [min, max]. A
// failed round (timed out) doubles the next deadline, bounded by max, so the
// estimate recovers when the swarm slows down.
#include <chrono>
#include <deque>

namespace apiary::optimizer {

struct DeadlinePolicy {
  double initial_seconds = 15.0;
  double min_seconds = 1.0;
  double max_seconds = 120.0;
  double safety_factor = 2.0;
  double quantile = 0.9;
  std::size_t window = 16;
};

class AdaptiveDeadline {
 public:
  explicit AdaptiveDeadline(DeadlinePolicy policy = {});

  // Seconds to allow for the next round.
  double next_seconds() const noexcept { return current_; }
  void record_success(double seconds);
  void record_timeout();
  std::size_t samples() const noexcept { return recent_.size(); }

 private:
  void recompute();
  DeadlinePolicy policy_;
  std::deque<double> recent_;
  double current_;
  int consecutive_timeouts_ = 0;
};

}  // namespace apiary::optimizer
