#pragma once
// What `apiary join` and `apiary train --solo --config` print about a run of
// optimizer::run_training: one progress line per status, and the final
// summary as JSON (field names shared with `apiary demo`'s summary.json).
#include "optimizer/trainer.hpp"

#include <nlohmann/json.hpp>

#include <string>

namespace apiary::tools {

std::string progress_line(const optimizer::TrainerStatus& status);

// epochs, test_accuracy, loss, local_samples, samples_per_s, seconds,
// communication_seconds, communication_fraction, rounds, limits reached, hash.
nlohmann::json summary_json(const optimizer::TrainerSummary& summary);

// "finished: epoch N, test accuracy …" (with why it stopped).
std::string finished_line(const optimizer::TrainerSummary& summary, bool stopped);

}  // namespace apiary::tools
