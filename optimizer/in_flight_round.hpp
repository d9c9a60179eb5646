#pragma once
// CollaborativeOptimizer::InFlightRound, shared by the two files that run
// rounds on the worker thread (collaborative_optimizer.cpp: gradients with
// overlap; local_updates.cpp: the outer round with overlap).
#include "optimizer/collaborative_optimizer.hpp"

#include <future>
#include <vector>

namespace apiary::optimizer {

// One overlapped round being averaged on the worker thread: this peer's mean
// gradients of `epoch` (and, every K epochs, copies of its state), or in
// local-update mode its parameters (in `gradients`). The worker writes the
// buffers and outcomes; the training thread reads them only after `done` is
// ready.
struct CollaborativeOptimizer::InFlightRound {
  std::uint64_t epoch = 0;
  std::uint64_t generation = 0;
  std::uint64_t local_samples = 0;
  double deadline_seconds = 0;
  std::vector<float> gradients;  // local mean, then the swarm's (local again on failure)
  AveragingOutcome outcome;
  std::uint64_t state_epoch = 0;          // key of the state round
  std::vector<std::vector<float>> state;  // empty: no state round this time
  AveragingOutcome state_outcome;
  std::future<void> done;
};

}  // namespace apiary::optimizer
