#pragma once
// Swarm progress estimation — the socket-free core of the ProgressTracker.
//
// Every peer publishes a PeerProgress report in the DHT (its own signed
// subkey). From the reports it can see, a peer estimates the global epoch, the
// samples accumulated towards the target batch size, the time when the target
// will be reached, and when to look again (sooner as the target nears, so
// matchmaking can start ahead of time). Pure functions of their inputs.
#include <cstdint>
#include <span>
#include <string>

namespace apiary::optimizer {

struct PeerProgress {
  std::string peer;  // peer id (printable)
  std::uint64_t epoch = 0;
  std::uint64_t samples_accumulated = 0;  // since that peer's epoch began
  double samples_per_second = 0;          // smoothed throughput
  double report_time = 0;                 // DHT time of the report (seconds)
  bool client_mode = false;
  double loss = -1;           // smoothed training loss (-1: unknown)
  double test_accuracy = -1;  // last evaluation (-1: none)
  // What the peer's process did so far, for dashboards only (nothing decides
  // on them; 0 / -1 when the peer did not say).
  std::uint64_t rounds_averaged = 0;
  std::uint64_t rounds_failed = 0;  // steps that found no group
  std::uint64_t bytes_sent = 0;     // RPC bytes, all traffic
  std::uint64_t bytes_received = 0;
  double round_seconds = -1;  // mean averaging round time (-1: none yet)
};

struct GlobalProgress {
  std::uint64_t global_epoch = 0;
  std::uint64_t samples_accumulated = 0;  // reported, by peers at global_epoch
  double estimated_samples = 0;           // extrapolated to `now`
  double total_samples_per_second = 0;
  double eta = 0;             // DHT time at which the target is reached
  double estimated_at = 0;    // DHT time of this estimate (`now`)
  double next_refresh = 0;    // DHT time of the next fetch
  std::size_t num_peers = 0;  // reports counted (incl. client-mode)
  bool target_reached(std::uint64_t target) const noexcept {
    return estimated_samples >= static_cast<double>(target);
  }
  double seconds_to_target() const noexcept { return eta - estimated_at; }
};

// The per-peer throughput cap when a run sets none (RunConfig::max_peer_samples_per_second 0).
inline constexpr double kDefaultMaxPeerSamplesPerSecond = 1e6;

struct ProgressOptions {
  double min_refresh_period = 0.5;
  double max_refresh_period = 10.0;
  double default_refresh_period = 3.0;
  // Refresh at a fraction of the ETA: look again before the target could be
  // reached, allowing for peers arriving or speeding up.
  double expected_drift_peers = 3.0;
  double expected_drift_rate = 0.2;
  // A peer whose newest report is of the epoch just before but no older than
  // this is taken to be in the current epoch since it began (the report of its new
  // epoch has not reached us yet: rounds end together, reports travel late).
  double recent_report_seconds = 5.0;
  // Reports are a stranger's claims (issue 13): a throughput above what one
  // peer of the run may process counts as that maximum; a report claiming
  // more samples in an epoch than twice the target batch, or a non-finite or
  // negative throughput, is ignored.
  double max_peer_samples_per_second = kDefaultMaxPeerSamplesPerSecond;
};

// `reports` should include this peer's own report. Reports older than the
// caller's staleness limit should be filtered out before the call.
// The global epoch is never further ahead than plausible: the newest epoch a
// strict majority of the (non-client) reports has reached, or one epoch past
// this peer's when half of them are there (two peers, one of which just
// stepped); a minority claiming a later epoch moves nobody, and its samples are
// not counted.
// `epoch_started_at`: when this peer entered `local_epoch` (DHT time; < 0:
// unknown, then reports of earlier epochs are not counted).
GlobalProgress estimate_progress(std::span<const PeerProgress> reports, std::uint64_t local_epoch,
                                 std::uint64_t target_batch_size, double now,
                                 const ProgressOptions& options = {}, double epoch_started_at = -1);

// Whether a report is counted at all (see ProgressOptions; `target_batch_size`: the run's).
bool plausible_report(const PeerProgress& report, std::uint64_t target_batch_size);

// Throughput (samples/second) as a ratio of exponential moving averages of
// samples and of seconds. Averaging rates instead would be biased upwards by
// short intervals (Jensen); the ratio weights each interval by its length.
class ThroughputEma {
 public:
  explicit ThroughputEma(double alpha = 0.1) : alpha_(alpha) {}
  void update(double samples, double seconds) noexcept;
  double samples_per_second() const noexcept;

 private:
  double alpha_;
  double samples_ = 0;
  double seconds_ = 0;
};

}  // namespace apiary::optimizer
