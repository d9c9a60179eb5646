// Local-update (DiLoCo) mode of CollaborativeOptimizer: inner steps on this
// peer's own gradients, and every `local_steps` an outer step with the swarm's
// mean of how far the inner steps moved the parameters.
#include "optimizer/collaborative_optimizer.hpp"

#include "core/log.hpp"
#include "kernels/optimizer.hpp"
#include "kernels/reduce.hpp"

namespace apiary::optimizer {

bool CollaborativeOptimizer::diloco_step(std::size_t batch_size) {
  {
    std::lock_guard lock(state_mutex_);
    rule_->step(params_, grads_, epoch_);
  }
  local_samples_ += batch_size;
  ++inner_steps_;
  report(false);
  if (inner_steps_ % options_.config.averaging.local_steps != 0) return false;
  // A peer whose round failed while the others averaged stays behind for
  // good (each round's key is its epoch, and a failed round costs it the
  // matchmaking wait): take the state of a peer that is ahead instead.
  const GlobalProgress global = swarm_->global_progress(epoch_);
  if (global.global_epoch > epoch_) {
    log::info("outer step {} is behind the swarm ({}): loading state from peers", epoch_,
              global.global_epoch);
    // Any peer ahead will do: donors announce their epoch only now and then.
    if (load_state_from_peers(epoch_ + 1)) {
      last_step_time_ = now();
      return true;
    }
  }

  RoundReport round = begin_round();
  // Pseudo-gradient: how far the inner steps moved the parameters.
  for (std::size_t i = 0; i < params_.size(); ++i) accumulated_[i] = outer_anchor_[i] - params_[i];
  const std::string key = options_.config.run + ".outer." + std::to_string(epoch_);
  average_accumulated(key, round);
  round.applied = true;
  round.applied_epoch = epoch_;
  if (round.averaged) {
    deadline_.record_success(round.gradients.seconds);
  } else {
    ++failed_rounds_;
    log::warn("outer step {}: averaging failed ({}); applying the local delta", epoch_,
              round.gradients.error);
  }
  {
    std::lock_guard lock(state_mutex_);
    kernels::SgdConfig outer{static_cast<float>(options_.config.averaging.outer_lr),
                             static_cast<float>(options_.config.averaging.outer_momentum), 0.0f,
                             true};
    kernels::sgd_step(outer_anchor_, accumulated_, outer_momentum_, outer);
    kernels::copy(params_, outer_anchor_);
    local_samples_ = 0;
    epoch_ += 1;
  }
  finish_boundary(round);
  return true;
}

}  // namespace apiary::optimizer
