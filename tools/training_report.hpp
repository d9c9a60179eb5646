#pragma once
// What `apiary join` and `apiary train --solo --config` print about a run of
// optimizer::run_training: one progress line per status, and the final
// summary as JSON (field names shared with `apiary demo`'s summary.json).
#include "optimizer/trainer.hpp"

#include <nlohmann/json.hpp>

#include <string>

namespace apiary::tools {

// `target_batch_size` > 0 adds the last round's group and the time to the
// next epoch at the swarm's throughput.
std::string progress_line(const optimizer::TrainerStatus& status,
                          std::uint64_t target_batch_size = 0);

// epochs, test_accuracy, loss, local_samples, samples_per_s, seconds,
// communication_seconds, communication_fraction, rounds, limits reached, hash.
nlohmann::json summary_json(const optimizer::TrainerSummary& summary);

// "finished: epoch N, test accuracy …" (with why it stopped).
std::string finished_line(const optimizer::TrainerSummary& summary, bool stopped);

}  // namespace apiary::tools
