// CollaborativeOptimizer::finish_epoch: a leaving peer's last, partial epoch.
// Without it the samples a peer accumulated after the swarm's last boundary
// are lost when it stops, and so is the run's final epoch whenever peers stop
// together (4 peers at the end of their data: 15 of 16 epochs stepped).
#include "core/log.hpp"
#include "optimizer/collaborative_optimizer.hpp"

#include <algorithm>
#include <thread>

namespace apiary::optimizer {

bool CollaborativeOptimizer::finish_epoch(std::chrono::duration<double> timeout,
                                          std::chrono::duration<double> quiet) {
  // Local updates: an outer round still travelling is applied (overlap).
  if (options_.config.averaging.mode == AveragingMode::local_updates) return finish_overlap();
  if (local_samples_ == 0) return false;
  if (quiet.count() <= 0) quiet = std::chrono::duration<double>(std::max(2.0, 3 * batch_seconds()));
  report(true);
  using Clock = std::chrono::steady_clock;
  const auto started = Clock::now();
  auto last_change = started;
  std::uint64_t last_count = 0;
  for (bool first = true;; first = false) {
    const GlobalProgress global = swarm_->global_progress(epoch_);
    if (is_behind(global)) {
      log::info("epoch {}: the swarm moved on ({}); {} samples not averaged", epoch_,
                global.global_epoch, local_samples_);
      return false;
    }
    const auto t = Clock::now();
    if (first || global.samples_accumulated != last_count) {
      last_count = global.samples_accumulated;
      last_change = t;
    }
    const bool stopped = t - last_change >= quiet;
    // Matched now, so that peers stopping together find each other in one group.
    prepare_rounds(global, /*now=*/true);
    if (is_complete(global) || stopped) {
      log::debug("epoch {}: finishing with {} of the swarm's {} samples ({})", epoch_,
                 local_samples_, global.samples_accumulated,
                 stopped ? "every peer stopped" : "the epoch is complete");
      end_epoch(global, 0);
      finish_overlap();
      return true;
    }
    if (t - started >= timeout) {
      log::info("epoch {}: leaving before the epoch completed; {} samples not averaged", epoch_,
                local_samples_);
      return false;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

}  // namespace apiary::optimizer
