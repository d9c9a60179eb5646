#pragma once
// Local-update (DiLoCo) test set-up shared by the optimizer's tests: the
// options (SGD inner steps, 4 per phase, outer lr 1 without momentum) and two
// peers run to their first outer step; a progress report.
#include "optimizer/collaborative_optimizer.hpp"
#include "tests/optimizer/fake_swarm.hpp"

#include <string>
#include <thread>

namespace apiary::optimizer::testing {

inline CollaborativeOptions local_update_options(const std::string& run) {
  CollaborativeOptions o;
  o.config.run = run;
  o.config.optimizer.name = OptimizerName::sgd;
  o.config.optimizer.lr = 0.1;
  o.config.optimizer.momentum = 0.0;
  o.config.averaging.mode = AveragingMode::local_updates;
  o.config.averaging.local_steps = 4;
  o.config.averaging.outer_lr = 1.0;
  o.config.averaging.outer_momentum = 0.0;
  o.load_state_on_start = false;
  return o;
}

// A peer's progress report at `epoch`, as if it were training.
inline void report_epoch(FakeHub& hub, const std::string& peer, std::uint64_t epoch) {
  PeerProgress progress;
  progress.epoch = epoch;
  progress.report_time = hub.now();
  hub.report(peer, progress);
}

// Both peers step (each on its own thread) until their first outer step;
// whichever is first in the round releases it, and the other ends its inner
// phase then (fewer steps). Bounded: at most four phases each.
inline void run_both_to_first_outer_step(CollaborativeOptimizer& a, CollaborativeOptimizer& b,
                                         std::uint32_t local_steps) {
  auto run = [local_steps](CollaborativeOptimizer& opt) {
    for (std::uint32_t i = 0; i < 4 * local_steps && opt.epoch() == 0; ++i) opt.step(8);
  };
  std::thread other([&] { run(b); });
  run(a);
  other.join();
}

}  // namespace apiary::optimizer::testing
