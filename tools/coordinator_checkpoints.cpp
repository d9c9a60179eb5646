#include "tools/coordinator_checkpoints.hpp"

#include "core/log.hpp"
#include "optimizer/network_swarm.hpp"

#include <algorithm>
#include <chrono>

namespace apiary::tools {
namespace {

std::vector<std::size_t> sizes_of(const optimizer::StateSnapshot& state) {
  std::vector<std::size_t> sizes;
  for (const auto& t : state.tensors) sizes.push_back(t.size());
  return sizes;
}

}  // namespace

CoordinatorCheckpoints::CoordinatorCheckpoints(dht::DhtRunner& runner, const std::string& dir,
                                               const std::string& run,
                                               const std::string& config_json, std::uint32_t every)
    : runner_(runner),
      run_(run),
      every_(std::max<std::uint32_t>(every, 1)),
      checkpoints_(dir, run, config_json) {
  if (auto latest = checkpoints_.load_latest()) {
    log::info("newest checkpoint in {} is epoch {}", dir, latest->epoch);
    state_sizes_ = sizes_of(*latest);
  }
  next_epoch_ = checkpoints_.last_epoch() + every_;
}

void CoordinatorCheckpoints::on_progress(std::uint64_t epoch) {
  vouched_epoch_ = epoch;
  if (epoch < next_epoch_) return;
  // A failed download or write is retried at the next period, not every status line.
  next_epoch_ = epoch + every_;
  save_now();
}

void CoordinatorCheckpoints::save_now() {
  const std::uint64_t min_epoch = checkpoints_.last_epoch() + 1;
  auto state = runner_
                   .run([&](dht::DhtNode& node) {
                     return optimizer::download_run_state(
                         node, run_, min_epoch, vouched_epoch_, state_sizes_,
                         std::chrono::milliseconds(20000), &donor_bans_);
                   })
                   .get();
  if (!state) {
    log::warn("checkpoint: no peer could provide the state of epoch ≥ {}", min_epoch);
    return;
  }
  if (checkpoints_.save(*state)) state_sizes_ = sizes_of(*state);
}

}  // namespace apiary::tools
