#include "optimizer/progress_estimate.hpp"

#include "core/majority.hpp"

#include <algorithm>
#include <cmath>
#include <vector>

namespace apiary::optimizer {
namespace {

// The epoch this peer believes the swarm is in (see the header).
std::uint64_t plausible_global_epoch(std::span<const PeerProgress> reports,
                                     std::uint64_t local_epoch) {
  std::vector<std::uint64_t> epochs;
  for (const auto& r : reports) {
    // Client-mode peers can't be reached for state, so they don't move the epoch.
    if (!r.client_mode) epochs.push_back(r.epoch);
  }
  // One epoch ahead on a tie (two peers, one just stepped); further on a majority.
  const std::uint64_t tied = std::min(half_reached(epochs).value_or(0), local_epoch + 1);
  return std::max({local_epoch, tied, majority_reached(std::move(epochs)).value_or(0)});
}

}  // namespace

bool plausible_report(const PeerProgress& r, std::uint64_t target_batch_size) {
  return std::isfinite(r.samples_per_second) && r.samples_per_second >= 0 &&
         static_cast<double>(r.samples_accumulated) <=
             2.0 * static_cast<double>(target_batch_size) &&
         std::isfinite(r.report_time);
}

GlobalProgress estimate_progress(std::span<const PeerProgress> all_reports,
                                 std::uint64_t local_epoch, std::uint64_t target_batch_size,
                                 double now, const ProgressOptions& options,
                                 double epoch_started_at) {
  std::vector<PeerProgress> reports;
  reports.reserve(all_reports.size());
  for (const auto& r : all_reports) {
    if (!plausible_report(r, target_batch_size)) continue;
    reports.push_back(r);
    // Throughput above the run's per-peer maximum counts as that maximum.
    reports.back().samples_per_second =
        std::min(r.samples_per_second, options.max_peer_samples_per_second);
  }
  GlobalProgress out;
  out.estimated_at = now;
  out.global_epoch = plausible_global_epoch(reports, local_epoch);
  // Further ahead than that is a claim nobody vouches for: it counts for nothing.
  std::erase_if(reports, [&](const PeerProgress& r) { return r.epoch > out.global_epoch; });
  for (const auto& r : reports) {
    ++out.num_peers;
    out.total_samples_per_second += std::max(0.0, r.samples_per_second);
    if (r.epoch + 1 == out.global_epoch && epoch_started_at >= 0 &&
        local_epoch == out.global_epoch && now - r.report_time <= options.recent_report_seconds) {
      // Most likely it left the same round as this peer did and its new
      // report is still on the way: count it from when this epoch began.
      // Only the round just before: a peer further behind is stuck (in a
      // round, or loading state), and counting its rate would end epochs on
      // samples nobody computes.
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
