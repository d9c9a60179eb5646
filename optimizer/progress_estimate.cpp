#include "optimizer/progress_estimate.hpp"

#include <algorithm>

namespace apiary::optimizer {

GlobalProgress estimate_progress(std::span<const PeerProgress> reports, std::uint64_t local_epoch,
                                 std::uint64_t target_batch_size, double now,
                                 const ProgressOptions& options, double epoch_started_at) {
  GlobalProgress out;
  out.estimated_at = now;
  out.global_epoch = local_epoch;
  // Client-mode peers can't be reached for state, so they don't move the epoch.
  for (const auto& r : reports) {
    if (!r.client_mode) out.global_epoch = std::max(out.global_epoch, r.epoch);
  }
  for (const auto& r : reports) {
    ++out.num_peers;
    out.total_samples_per_second += std::max(0.0, r.samples_per_second);
    if (r.epoch < out.global_epoch && epoch_started_at >= 0 && local_epoch == out.global_epoch &&
        now - r.report_time <= options.recent_report_seconds) {
      // Most likely it left the same round as this peer did and its new
      // report is still on the way: count it from when this epoch began.
      const double since = std::max(0.0, now - std::max(r.report_time, epoch_started_at));
      out.estimated_samples += since * std::max(0.0, r.samples_per_second);
      continue;
    }
    if (r.epoch != out.global_epoch) continue;
    out.samples_accumulated += r.samples_accumulated;
    const double elapsed = std::max(0.0, now - r.report_time);
    out.estimated_samples +=
        static_cast<double>(r.samples_accumulated) + elapsed * std::max(0.0, r.samples_per_second);
  }
  const double remaining =
      std::max(0.0, static_cast<double>(target_batch_size) - out.estimated_samples);
  if (out.total_samples_per_second > 0) {
    out.eta = now + remaining / out.total_samples_per_second;
  } else {
    out.eta = remaining > 0 ? now + options.max_refresh_period : now;
  }
  if (out.num_peers == 0) {
    out.next_refresh = now + options.default_refresh_period;
  } else {
    const double n = static_cast<double>(out.num_peers);
    const double fraction =
        n / std::max(n + options.expected_drift_peers, n * (1 + options.expected_drift_rate));
    const double wait = std::clamp((out.eta - now) * fraction, options.min_refresh_period,
                                   options.max_refresh_period);
    out.next_refresh = now + wait;
  }
  return out;
}

void ThroughputEma::update(double samples, double seconds) noexcept {
  if (seconds <= 0 || samples < 0) return;
  samples_ = alpha_ * samples + (1 - alpha_) * samples_;
  seconds_ = alpha_ * seconds + (1 - alpha_) * seconds_;
}

double ThroughputEma::samples_per_second() const noexcept {
  return seconds_ > 0 ? samples_ / seconds_ : 0.0;
}

}  // namespace apiary::optimizer
