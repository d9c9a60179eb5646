#include "tools/training_report.hpp"

#include "optimizer/state_checkpoints.hpp"
#include "tools/progress_printer.hpp"

#include <cstdio>

namespace apiary::tools {

std::string progress_line(const optimizer::TrainerStatus& s, std::uint64_t target_batch_size) {
  char accuracy[16] = "  -  ";
  if (s.test_accuracy >= 0)
    std::snprintf(accuracy, sizeof(accuracy), "%.2f%%", 100 * s.test_accuracy);
  char line[256];
  std::snprintf(
      line, sizeof(line),
      "epoch %4llu | local %8llu samples %6.0f/s | swarm %zu peers %7.0f samples/s | loss %.4f | "
      "test acc %s",
      static_cast<unsigned long long>(s.epoch), static_cast<unsigned long long>(s.local_samples),
      s.local_samples_per_second, s.swarm_peers, s.swarm_samples_per_second, s.loss, accuracy);
  if (target_batch_size == 0) return line;
  const std::string round = s.averaged_rounds + s.local_rounds == 0 ? "-"
                            : s.last_group_size > 1
                                ? "group of " + std::to_string(s.last_group_size)
                                : "local";
  return std::string(line) + " | last round " + round + " | next epoch in " +
         duration_text(seconds_to_next_epoch(static_cast<double>(target_batch_size),
                                             static_cast<double>(s.swarm_samples_this_epoch),
                                             s.swarm_samples_per_second));
}

nlohmann::json summary_json(const optimizer::TrainerSummary& summary) {
  const auto& s = summary.last;
  const double seconds = s.seconds > 0 ? s.seconds : 0.0;
  return {{"epochs", s.epoch},
          {"test_accuracy", s.test_accuracy},
          {"best_test_accuracy", summary.best_test_accuracy},
          {"loss", s.loss},
          {"local_samples", s.local_samples},
          {"samples_per_s", seconds > 0 ? static_cast<double>(s.local_samples) / seconds : 0.0},
          {"swarm_samples_per_s", s.swarm_samples_per_second},
          {"peers", s.swarm_peers},
          {"averaged_rounds", s.averaged_rounds},
          {"local_rounds", s.local_rounds},
          {"skipped_batches", s.skipped_batches},
          {"seconds", seconds},
          {"communication_seconds", s.communication_seconds},
          {"communication_fraction", seconds > 0 ? s.communication_seconds / seconds : 0.0},
          {"reached_target_accuracy", summary.reached_target_accuracy},
          {"hit_time_limit", summary.hit_time_limit},
          // Peers that averaged the same rounds hold the same bytes.
          {"parameters_hash", summary.final_state.tensors.empty()
                                  ? std::string()
                                  : optimizer::parameters_hash(summary.final_state.tensors[0])}};
}

std::string finished_line(const optimizer::TrainerSummary& summary, bool stopped) {
  const auto& s = summary.last;
  char line[256];
  std::snprintf(line, sizeof(line),
                "finished: epoch %llu, test accuracy %.2f%%, %llu local samples in %.1f s "
                "(%.1f%% blocked in communication) (%s)",
                static_cast<unsigned long long>(s.epoch), 100 * s.test_accuracy,
                static_cast<unsigned long long>(s.local_samples), s.seconds,
                s.seconds > 0 ? 100 * s.communication_seconds / s.seconds : 0.0,
                summary.reached_target_accuracy ? "target accuracy reached"
                : summary.hit_time_limit        ? "time limit"
                : stopped                       ? "stopped"
                                                : "epoch limit");
  return line;
}

}  // namespace apiary::tools
