#pragma once
// The training loop behind `apiary join` and `apiary train --solo --config`:
// builds the run's model (optimizer/model_factory.hpp), feeds it mini-batches in a
// per-peer seeded order, and steps a CollaborativeOptimizer over whatever
// SwarmServices it is given (the network, or SoloSwarm for a group of one).
// Errors: throws apiary::Error (configuration) or nn::DatasetError (data).
#include "optimizer/collaborative_optimizer.hpp"
#include "optimizer/run_config.hpp"
#include "optimizer/solo_swarm.hpp"
#include "optimizer/swarm_services.hpp"

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

namespace apiary::dht {
class DhtRunner;
}

namespace apiary::optimizer {

struct TrainerStatus {
  std::uint64_t epoch = 0;
  std::uint64_t local_samples = 0;  // processed by this peer since it started
  double local_samples_per_second = 0;
  double swarm_samples_per_second = 0;
  std::size_t swarm_peers = 0;
  std::uint64_t swarm_samples_this_epoch = 0;
  double loss = 0;            // smoothed training loss
  double test_accuracy = -1;  // last evaluation (-1: none yet)
  // Since the trainer started, not counting the final evaluation.
  double seconds = 0;
  // Time the training thread was blocked on the network, not computing
  // (CollaborativeOptimizer::communication_blocked_seconds: averaging rounds
  // it waited for, state averaging, state downloads, the one on start included).
  double communication_seconds = 0;
  std::uint64_t averaged_rounds = 0;
  std::uint64_t local_rounds = 0;  // epochs that proceeded with local gradients
  std::size_t last_group_size = 0;
  std::uint64_t skipped_batches = 0;  // not computed: remote experts did not answer
  bool epoch_ended = false;           // this status was emitted at an epoch boundary
};

struct TrainerOptions {
  RunConfig config;
  std::string data_dir;           // empty: config.dataset.path
  std::uint64_t data_seed = 0;    // per-peer shuffling (e.g. from the peer id)
  std::uint32_t batch_size = 0;   // 0: config.batch_size
  std::uint32_t max_epochs = 0;   // 0: config.max_epochs (0 there: unbounded)
  double time_limit_seconds = 0;  // 0: none
  // 0: only the final evaluation (on the whole test set, as always)
  std::uint32_t eval_every_epochs = 1;
  std::size_t eval_samples = 10000;  // test samples per evaluation
  double status_period_seconds = 1.0;
  bool client_mode = false;
  std::function<void(const TrainerStatus&)> on_status;
  const std::atomic<bool>* stop = nullptr;  // set to true to stop after the current step
  double step_delay_seconds = 0;            // artificial slowness per step (tests of stragglers)
  // Resume from this state (e.g. a checkpoint) instead of asking peers at
  // start; peers are still asked for a newer one, so a swarm that moved on is
  // caught up with. A state that does not fit the model is refused (logged).
  std::optional<StateSnapshot> initial_state;
  // Called after every epoch boundary (e.g. to write a checkpoint of optimizer.snapshot()).
  std::function<void(const CollaborativeOptimizer&)> on_epoch_end;
  // Where a moe-mlp model finds its remote experts (e.g. &NetworkSwarm::dht());
  // must outlive run_training. Required for moe-mlp, unused otherwise.
  dht::DhtRunner* expert_dht = nullptr;
};

struct TrainerSummary {
  TrainerStatus last;
  double best_test_accuracy = 0;
  bool reached_target_accuracy = false;
  bool hit_time_limit = false;
  std::vector<std::vector<float>> final_parameters;  // for tests and checkpoints
  StateSnapshot final_state;  // parameters, optimizer statistics, epoch (checkpoint on exit)
};

TrainerSummary run_training(std::shared_ptr<SwarmServices> swarm, const TrainerOptions& options);

}  // namespace apiary::optimizer
