#include "tools/dashboard/training_metrics.hpp"

#include "core/metrics.hpp"

#include <mutex>

namespace apiary::tools {
namespace {

// Counters only go up: add what the status adds since the last one.
void advance_to(metrics::Counter& counter, std::uint64_t total) {
  const auto now = counter.value();
  if (total > now) counter.inc(total - now);
}

}  // namespace

void record_training_status(const optimizer::TrainerStatus& s) {
  static std::mutex mutex;  // advance_to reads then adds
  std::lock_guard lock(mutex);
  auto& r = metrics::Registry::global();
  r.gauge("apiary_training_epoch", "collaborative epoch this peer is at").set(s.epoch);
  advance_to(r.counter("apiary_training_samples_total", "samples this peer trained on"),
             s.local_samples);
  r.gauge("apiary_training_samples_per_second", "this peer's throughput")
      .set(s.local_samples_per_second);
  r.gauge("apiary_training_loss", "smoothed training loss").set(s.loss);
  r.gauge("apiary_training_test_accuracy", "last test accuracy (-1: none yet)")
      .set(s.test_accuracy);
  r.gauge("apiary_training_communication_blocked_seconds",
          "seconds the training thread has waited for the network so far")
      .set(s.communication_seconds);
  r.gauge("apiary_swarm_peers", "peers reporting progress in the run").set(s.swarm_peers);
  r.gauge("apiary_swarm_samples_per_second", "the swarm's throughput as this peer estimates it")
      .set(s.swarm_samples_per_second);
}

}  // namespace apiary::tools
