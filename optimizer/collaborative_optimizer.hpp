#pragma once
// CollaborativeOptimizer: many peers take one optimizer step together each
// time the whole swarm has processed `target_batch_size` samples — an epoch.
//
// Embedding API (see examples/custom_loop.cpp):
//
//   CollaborativeOptimizer opt(swarm, options, params, grads);
//   for (;;) {
//     compute gradients of one mini-batch into `grads` (overwrite, don't add);
//     opt.step(batch_size);      // accumulates; at the epoch boundary averages and steps
//     if (opt.epoch() >= 20) break;
//   }
//
// Target-batch mode: gradients are accumulated locally (weighted by batch
// size) until the swarm's estimate says the target is reached or another peer
// has moved on; then the mean gradients are averaged with the peers at the
// same epoch (weight = local samples), the local optimizer steps with the
// learning rate for that epoch, and epoch = max(local + 1, global). Every
// `average_state_every` epochs parameters and optimizer statistics are
// averaged too. If averaging fails the peer proceeds with its local gradients
// and says so (log, metrics, last_round()).
//
// Local-update mode (DiLoCo): each step() is an inner optimizer step on the
// local gradients; every `local_steps` inner steps the parameter deltas are
// averaged and applied with an outer Nesterov step.
//
// Stragglers and late joiners: a peer that is behind the swarm (it missed a
// round, or is new, when `load_state_on_start`) downloads the state from peers
// and resumes from there; a slow peer contributes what it has accumulated
// when the others reach the target and never blocks them.
//
// Threading: step() and the accessors are called from the training thread.
// Errors: throws apiary::Error{invalid_argument} for buffer size mismatches.
#include "optimizer/adaptive_deadline.hpp"
#include "optimizer/local_optimizer.hpp"
#include "optimizer/progress_estimate.hpp"
#include "optimizer/run_config.hpp"
#include "optimizer/swarm_services.hpp"

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <vector>

namespace apiary::optimizer {

struct CollaborativeOptions {
  std::string run;
  std::uint64_t target_batch_size = 4096;
  OptimizerConfig optimizer;
  AveragingConfig averaging;
  bool client_mode = false;
  bool load_state_on_start = true;  // a joiner first asks peers for the current state
  // Least time between progress reports to the swarm (0: every step; the
  // swarm decides how often to publish them — NetworkSwarm: once a second).
  double report_period_seconds = 0.0;
  std::chrono::duration<double> state_download_timeout{30.0};
  // Returns the current time in seconds (tests inject a fake clock).
  std::function<double()> clock;
};

// What happened at the last epoch boundary.
struct RoundReport {
  std::uint64_t epoch = 0;          // the epoch that ended
  std::uint64_t local_samples = 0;  // this peer's contribution
  bool averaged = false;            // false: proceeded with local gradients
  AveragingOutcome gradients;
  bool state_averaged = false;
  double deadline_seconds = 0;  // the adaptive deadline used
};

class CollaborativeOptimizer {
 public:
  // `params` and `grads` are the model's flat buffers (same size); `slices`
  // name its tensors (LAMB). The buffers must outlive the optimizer.
  CollaborativeOptimizer(std::shared_ptr<SwarmServices> swarm, CollaborativeOptions options,
                         std::span<float> params, std::span<float> grads,
                         std::vector<kernels::TensorSlice> slices = {});
  ~CollaborativeOptimizer();

  // Call after backward with the mini-batch size. Returns true when this call
  // ended an epoch (a collaborative step or, in local-update mode, an outer step).
  bool step(std::size_t batch_size);

  std::uint64_t epoch() const noexcept { return epoch_; }
  std::uint64_t local_samples() const noexcept { return local_samples_; }
  const RoundReport& last_round() const noexcept { return last_round_; }
  std::uint64_t failed_rounds() const noexcept { return failed_rounds_; }
  double samples_per_second() const noexcept { return throughput_.samples_per_second(); }
  LocalOptimizer& local_optimizer() noexcept { return local_; }

  // Loss and test accuracy to include in progress reports (-1: unknown).
  void set_training_metrics(double loss, double test_accuracy) noexcept {
    loss_ = loss;
    test_accuracy_ = test_accuracy;
  }

  // Asks peers for the current state now (also done automatically).
  bool load_state_from_peers(std::uint64_t min_epoch = 0);
  StateSnapshot snapshot() const;
  void restore(const StateSnapshot& state);

 private:
  double now() const;
  void report(bool force);
  bool end_epoch(const GlobalProgress& global);
  bool diloco_step(std::size_t batch_size);
  void average_state();

  std::shared_ptr<SwarmServices> swarm_;
  CollaborativeOptions options_;
  std::span<float> params_;
  std::span<float> grads_;
  LocalOptimizer local_;
  std::vector<float> accumulated_;   // Σ batch_size · grads (target-batch mode)
  std::vector<float> outer_anchor_;  // DiLoCo: parameters at the last outer step
  std::vector<float> outer_momentum_;
  std::uint64_t epoch_ = 0;
  std::uint64_t local_samples_ = 0;  // since the epoch began
  std::uint64_t inner_steps_ = 0;
  std::uint64_t failed_rounds_ = 0;
  double last_report_ = -1e300;
  double loss_ = -1;
  double test_accuracy_ = -1;
  double last_step_time_ = 0;
  ThroughputEma throughput_;
  AdaptiveDeadline deadline_;
  RoundReport last_round_;
  mutable std::mutex state_mutex_;  // snapshot() may run on the network thread
};

}  // namespace apiary::optimizer
