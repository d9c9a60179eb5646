#pragma once
// SoloSwarm: a group of one. Progress is local, averaging succeeds trivially
// (nothing to average), there is no state to download. The baseline for
// comparisons, and what an embedder's loop runs on without peers.
// Errors: none (every call succeeds).
#include "optimizer/swarm_services.hpp"

#include <cstdint>

namespace apiary::optimizer {

class SoloSwarm : public SwarmServices {
 public:
  explicit SoloSwarm(std::uint64_t target_batch_size) : target_batch_size_(target_batch_size) {}

  void report_progress(const PeerProgress& local) override;
  GlobalProgress global_progress(std::uint64_t local_epoch) override;
  AveragingOutcome average(const std::string&, std::vector<std::span<float>>, float,
                           std::chrono::duration<double>, RoundKind) override;
  std::optional<StateSnapshot> download_state(std::uint64_t,
                                              std::chrono::duration<double>) override {
    return std::nullopt;
  }
  void serve_state(std::function<StateSnapshot()>) override {}

 private:
  std::uint64_t target_batch_size_;
  PeerProgress last_;
};

}  // namespace apiary::optimizer
