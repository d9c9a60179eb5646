#pragma once
// A trainer's status lines as metrics (core/metrics' global registry), so that
// `--metrics` of `apiary join` shows training next to the averaging and RPC
// figures: apiary_training_epoch, apiary_training_samples_total,
// apiary_training_samples_per_second, apiary_training_loss,
// apiary_training_test_accuracy, apiary_training_communication_blocked_seconds,
// apiary_swarm_peers, apiary_swarm_samples_per_second.
// Threading: any thread (one trainer per process). Errors: none.
#include "optimizer/trainer.hpp"

namespace apiary::tools {

void record_training_status(const optimizer::TrainerStatus& status);

}  // namespace apiary::tools
