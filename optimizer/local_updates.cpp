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
#include "optimizer/in_flight_round.hpp"

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
  if (in_flight_) {  // overlap: the outer step lands as soon as its round is back
    const bool back =
        in_flight_->done.wait_for(std::chrono::seconds(0)) == std::future_status::ready;
    return (back || boundary) && land_outer_round(global);
  }
  if (catch_up(global, boundary)) return true;
  prepare_outer_round();
  // A round another member released: this peer's inner phase ends now too.
  const bool released =
      prepared_epoch_ == epoch_ && swarm_->round_started(outer_key(epoch_, outer_attempt_));
  if (!boundary && !released) return false;
  if (!options_.config.averaging.overlap) return outer_boundary(global);
  launch_outer_round();
  return false;  // the epoch ends when the round lands
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

// The report of an outer round about to start. A member that reached its
// boundary first waits for the leader's: allow a quarter of a phase for the
// spread of the peers' speeds.
RoundReport CollaborativeOptimizer::outer_round_report() const {
  RoundReport round = begin_round();
  round.deadline_seconds +=
      0.25 * static_cast<double>(options_.config.averaging.local_steps) * batch_seconds();
  return round;
}

// The parameters are averaged (with the state codec), and each peer's
// pseudo-gradient is from its anchor to their mean: with equal anchors that is
// exactly the mean of the deltas, and anchors that differ (a step taken alone,
// before the others arrived) are drawn together — by about half per round at
// (0.7, 0.9) — instead of differing for good.
bool CollaborativeOptimizer::outer_boundary(const GlobalProgress& global) {
  RoundReport round = outer_round_report();
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
  if (!outer_outcome(round, global)) return false;
  local_samples_ = 0;
  take_outer_step(round, accumulated_, {});
  return true;
}

// Overlap: the parameters leave for the network on the worker thread and the
// next inner phase begins at once; accumulated_ keeps what was sent, so that
// the inner steps taken meanwhile survive the outer step.
void CollaborativeOptimizer::launch_outer_round() {
  const RoundReport report = outer_round_report();
  auto round = std::make_unique<InFlightRound>();
  round->epoch = epoch_;
  round->generation = generation_;
  round->local_samples = local_samples_;
  round->deadline_seconds = report.deadline_seconds;
  round->gradients.assign(params_.begin(), params_.end());
  kernels::copy(accumulated_, params_);
  inner_steps_ = 0;
  local_samples_ = 0;
  // Its keys are let go when it lands: the worker takes the group matched ahead.
  prepared_epoch_.reset();
  InFlightRound* r = round.get();
  r->done = worker_.submit([swarm = swarm_, r, key = outer_key(epoch_, outer_attempt_)] {
    r->outcome =
        swarm->average(key, {std::span<float>(r->gradients)}, static_cast<float>(r->local_samples),
                       std::chrono::duration<double>(r->deadline_seconds), RoundKind::state);
  });
  in_flight_ = std::move(round);
  log::debug("outer step {}: averaging in the background", epoch_);
}

// Overlap: the round is back (or the next boundary came first: waits for it).
bool CollaborativeOptimizer::land_outer_round(const GlobalProgress& global) {
  RoundReport round;
  auto flight = take_round(round.communication_blocked_seconds);
  round.overlapped = true;
  round.epoch = flight->epoch;
  round.local_samples = flight->local_samples;
  round.deadline_seconds = flight->deadline_seconds;
  round.gradients = flight->outcome;
  round.averaged = flight->outcome.ok;
  if (!prepared_keys_.empty()) swarm_->abandon_rounds(std::exchange(prepared_keys_, {}));
  if (flight->generation != generation_) {
    log::info("outer step {}: dropping the round in flight (state loaded since)", flight->epoch);
    blocked_seconds_total_ += round.communication_blocked_seconds;
    return false;
  }
  // Not averaged: toward the parameters this peer sent (its local delta).
  std::span<float> delta = flight->gradients;
  const std::span<const float> target =
      round.averaged ? std::span<const float>(delta) : std::span<const float>(accumulated_);
  for (std::size_t i = 0; i < delta.size(); ++i) delta[i] = outer_anchor_[i] - target[i];
  if (!outer_outcome(round, global)) return false;
  take_outer_step(round, delta, accumulated_);
  return true;
}

// Records a round's outcome; false when a failed round is postponed (once,
// while other peers are around: their anchors would move without this one's).
bool CollaborativeOptimizer::outer_outcome(RoundReport& round, const GlobalProgress& global) {
  if (round.averaged) {
    deadline_.record_success(round.gradients.seconds);
    return true;
  }
  ++failed_rounds_;
  if (round.gradients.seconds >= 0.9 * round.deadline_seconds) deadline_.record_timeout();
  if (outer_attempt_ == 0 && global.num_peers > 1) {
    ++outer_attempt_;
    log::warn("outer step {}: averaging failed ({}); postponed, training on", epoch_,
              round.gradients.error);
    blocked_seconds_total_ += round.communication_blocked_seconds;
    last_round_ = round;
    last_step_time_ = now();
    return false;
  }
  log::warn("outer step {}: averaging failed ({}); applying the local delta", epoch_,
            round.gradients.error);
  return true;
}

// The outer Nesterov step of the anchor by `delta`; the parameters become the
// new anchor, plus (overlap) the inner steps taken since `sent` left.
void CollaborativeOptimizer::take_outer_step(RoundReport& round, std::span<const float> delta,
                                             std::span<const float> sent) {
  round.applied = true;
  round.applied_epoch = epoch_;
  {
    std::lock_guard lock(state_mutex_);
    kernels::SgdConfig outer{static_cast<float>(options_.config.averaging.outer_lr),
                             static_cast<float>(options_.config.averaging.outer_momentum), 0.0f,
                             true};
    kernels::sgd_step(outer_anchor_, delta, outer_momentum_, outer);
    if (sent.empty()) {
      kernels::copy(params_, outer_anchor_);
    } else {
      for (std::size_t i = 0; i < params_.size(); ++i)
        params_[i] = outer_anchor_[i] + (params_[i] - sent[i]);
    }
    epoch_ += 1;
    outer_attempt_ = 0;
  }
  finish_boundary(round);
}

}  // namespace apiary::optimizer
