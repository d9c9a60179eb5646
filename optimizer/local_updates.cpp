// Local-update mode (DiLoCo) of CollaborativeOptimizer: inner steps on this
// peer's own gradients, and every `local_steps` an outer step toward the
// swarm's mean of the parameters the inner steps reached.
//
// The outer step keeps the peers' anchors (the parameters they step from)
// together: each steps its anchor toward the same mean, so anchors that agree
// stay equal and anchors that differ converge. What would pull them apart,
// and is avoided here:
//  * a peer whose round failed applying its own delta while the others
//    averaged: instead it postpones the outer step (once) and trains on, and
//    as soon as the swarm's epoch is ahead of its own it loads a peer's state;
//  * matchmaking at the boundary, behind the bulk traffic of other groups'
//    rounds: the outer round is matched ahead of time, from the first inner
//    step of the phase, while the links are quiet.
#include "core/log.hpp"
#include "kernels/optimizer.hpp"
#include "kernels/reduce.hpp"
#include "optimizer/collaborative_optimizer.hpp"

namespace apiary::optimizer {

std::string CollaborativeOptimizer::outer_key(std::uint64_t epoch, std::uint32_t attempt) const {
  std::string key = options_.config.run + ".outer." + std::to_string(epoch);
  // A retry after a round that failed for everyone: a key of its own, so that
  // it never meets that round's stale declarations.
  if (attempt > 0) key += ".retry" + std::to_string(attempt);
  return key;
}

// The outer round: the parameters, averaged with the state codec.
RoundPlan CollaborativeOptimizer::outer_round_plan(std::uint64_t epoch,
                                                   std::uint32_t attempt) const {
  return {outer_key(epoch, attempt), {params_.size()}, RoundKind::state};
}

// How long a round matched ahead stays held: twice the time to the boundary
// at this peer's speed (an estimate; the first one counts set-up), then the
// matchmaking and the round itself.
double CollaborativeOptimizer::outer_round_timeout(std::uint64_t steps_to_boundary) const {
  const double lead = std::max(0.1, options_.config.averaging.matchmaking_time);
  return 2 * static_cast<double>(steps_to_boundary) * batch_seconds() + lead +
         2 * deadline_.next_seconds();
}

bool CollaborativeOptimizer::diloco_step(std::size_t batch_size) {
  {
    std::lock_guard lock(state_mutex_);
    rule_->step(params_, grads_, epoch_);
  }
  local_samples_ += batch_size;
  ++inner_steps_;
  report(false);
  const GlobalProgress global = swarm_->global_progress(epoch_);
  const bool boundary = inner_steps_ >= options_.config.averaging.local_steps;
  if (catch_up(global, boundary)) return true;
  prepare_outer_round();
  // A round another member released: this peer's inner phase ends now too.
  const bool released =
      prepared_epoch_ == epoch_ && swarm_->round_started(outer_key(epoch_, outer_attempt_));
  if (!boundary && !released) return false;
  return outer_boundary(global);
}

// The swarm's epoch is ahead of this peer's: the others took an outer step
// without it, so its inner steps start from a stale anchor and cannot be
// averaged with theirs. Tried once per epoch the swarm is seen at, and again
// at each boundary (donors announce their epoch only now and then).
bool CollaborativeOptimizer::catch_up(const GlobalProgress& global, bool boundary) {
  if (global.global_epoch <= epoch_) return false;
  if (!boundary && catch_up_tried_ == global.global_epoch) return false;
  catch_up_tried_ = global.global_epoch;
  log::info("outer step {} is behind the swarm ({}): loading state from peers", epoch_,
            global.global_epoch);
  // The round of the epoch it will arrive at is matched while the state
  // downloads (about a phase behind 100 Mbit/s links): matched after it, the
  // group had started without this peer, which stayed one epoch behind and
  // loaded again and again.
  const std::uint64_t steps = options_.config.averaging.local_steps;
  match_ahead(global.global_epoch, {outer_round_plan(global.global_epoch, 0)},
              outer_round_timeout(steps));
  // Any peer ahead will do.
  if (!load_state_from_peers(epoch_ + 1)) return false;
  last_step_time_ = now();
  return true;
}

// Matches the outer round as the inner phase begins: the links are quiet
// then, and every member declares long before the leader's boundary, whatever
// the spread of the peers' phases (matched `matchmaking_time` before it, peers
// more than that apart missed the group and had to load the state).
void CollaborativeOptimizer::prepare_outer_round() {
  if (prepared_epoch_ == epoch_) return;
  const std::uint64_t steps = options_.config.averaging.local_steps;
  const std::uint64_t left = steps - std::min(steps, inner_steps_);
  log::debug("outer step {}: matching ahead of time ({} inner steps to the boundary)", epoch_,
             left);
  match_ahead(epoch_, {outer_round_plan(epoch_, outer_attempt_)}, outer_round_timeout(left));
}

bool CollaborativeOptimizer::outer_boundary(const GlobalProgress& global) {
  RoundReport round = begin_round();
  // A member that reached its boundary first waits for the leader's: allow a
  // quarter of a phase for the spread of the peers' speeds.
  round.deadline_seconds +=
      0.25 * static_cast<double>(options_.config.averaging.local_steps) * batch_seconds();
  // The parameters are averaged (with the state codec), and each peer's
  // pseudo-gradient is from its anchor to their mean: with equal anchors that
  // is exactly the mean of the deltas, and anchors that differ (a step taken
  // alone, before the others arrived) are drawn together — by about half per
  // round at (0.7, 0.9) — instead of differing for good.
  kernels::copy(accumulated_, params_);
  average_accumulated(outer_key(epoch_, outer_attempt_), round, RoundKind::state);
  inner_steps_ = 0;
  prepared_epoch_.reset();
  if (!prepared_keys_.empty()) swarm_->abandon_rounds(std::exchange(prepared_keys_, {}));
  // Not averaged: the local delta (chunks a failed reducer left local hold
  // this peer's parameters, so there it is the local delta too).
  const std::span<const float> target =
      round.averaged ? std::span<const float>(accumulated_) : std::span<const float>(params_);
  for (std::size_t i = 0; i < params_.size(); ++i) accumulated_[i] = outer_anchor_[i] - target[i];
  if (round.averaged) {
    deadline_.record_success(round.gradients.seconds);
  } else {
    ++failed_rounds_;
    if (round.gradients.seconds >= 0.9 * round.deadline_seconds) deadline_.record_timeout();
    // Others at this epoch: their anchors would move without this peer's.
    if (outer_attempt_ == 0 && global.num_peers > 1) {
      ++outer_attempt_;
      log::warn("outer step {}: averaging failed ({}); postponed, training on", epoch_,
                round.gradients.error);
      last_round_ = round;
      last_step_time_ = now();
      return false;
    }
    log::warn("outer step {}: averaging failed ({}); applying the local delta", epoch_,
              round.gradients.error);
  }
  round.applied = true;
  round.applied_epoch = epoch_;
  {
    std::lock_guard lock(state_mutex_);
    kernels::SgdConfig outer{static_cast<float>(options_.config.averaging.outer_lr),
                             static_cast<float>(options_.config.averaging.outer_momentum), 0.0f,
                             true};
    kernels::sgd_step(outer_anchor_, accumulated_, outer_momentum_, outer);
    kernels::copy(params_, outer_anchor_);
    local_samples_ = 0;
    epoch_ += 1;
    outer_attempt_ = 0;
  }
  finish_boundary(round);
  return true;
}

}  // namespace apiary::optimizer
