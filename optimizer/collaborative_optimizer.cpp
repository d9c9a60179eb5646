#include "optimizer/collaborative_optimizer.hpp"
#include "optimizer/in_flight_round.hpp"

#include "core/clock.hpp"
#include "core/error.hpp"
#include "core/log.hpp"
#include "core/metrics.hpp"
#include "kernels/reduce.hpp"
#include "optimizer/state_validation.hpp"

#include <algorithm>
#include <chrono>
#include <future>
#include <utility>

namespace apiary::optimizer {

namespace {

double system_seconds() {
  using namespace std::chrono;
  return duration<double>(system_clock::now().time_since_epoch()).count();
}

metrics::Counter& rounds_counter(const char* outcome) {
  return metrics::Registry::global().counter(
      std::string("apiary_optimizer_rounds_") + outcome + "_total",
      "collaborative epochs by averaging outcome");
}

void copy_into(std::span<float> dst, std::span<const float> src) {
  std::copy(src.begin(), src.end(), dst.begin());
}

}  // namespace

CollaborativeOptimizer::CollaborativeOptimizer(std::shared_ptr<SwarmServices> swarm,
                                               CollaborativeOptions options,
                                               std::span<float> params, std::span<float> grads,
                                               std::vector<kernels::TensorSlice> slices)
    : swarm_(std::move(swarm)),
      options_(std::move(options)),
      params_(params),
      grads_(grads),
      rule_(options_.step_rule ? options_.step_rule
                               : std::make_shared<ConfiguredStepRule>(
                                     options_.config.optimizer, params.size(), std::move(slices))),
      deadline_(DeadlinePolicy{
          .initial_seconds = options_.config.averaging.averaging_timeout,
          .min_seconds = 1.0,
          .max_seconds = std::max(4.0 * options_.config.averaging.averaging_timeout, 10.0)}) {
  if (params.size() != grads.size() || params.empty()) {
    throw Error(Errc::invalid_argument, "collaborative optimizer: parameters (" +
                                            std::to_string(params.size()) + ") and gradients (" +
                                            std::to_string(grads.size()) +
                                            ") must be non-empty and the same size");
  }
  options_.config.averaging.average_state_every =
      std::max<std::uint32_t>(1, options_.config.averaging.average_state_every);
  accumulated_.assign(params.size(), 0.0f);
  if (options_.config.averaging.mode == AveragingMode::target_batch)
    carried_.assign(params.size(), 0.0f);
  if (options_.config.averaging.mode == AveragingMode::local_updates) {
    outer_anchor_.assign(params.begin(), params.end());
    outer_momentum_.assign(params.size(), 0.0f);
  }
  // Local updates overlap without a speculative step (local_updates.cpp).
  const bool speculates = options_.config.averaging.mode == AveragingMode::target_batch;
  if (options_.config.averaging.overlap && speculates && !(speculative_ = rule_->clone())) {
    log::warn("averaging.overlap needs an optimizer that can be copied; running without it");
    options_.config.averaging.overlap = false;
  }
  if (options_.config.averaging.overlap && speculates) {
    agreed_storage_.assign(params.begin(), params.end());
    agreed_ = agreed_storage_;
  } else {
    agreed_ = params_;
  }
  last_step_time_ = now();
  if (!options_.client_mode) swarm_->serve_state([this] { return snapshot(); });
  if (options_.load_state_on_start) load_state_from_peers();
  report(true);
}

CollaborativeOptimizer::~CollaborativeOptimizer() {
  // Stop offering a state that is about to be destroyed, and let the groups
  // matched ahead of time go.
  if (!options_.client_mode) swarm_->serve_state({});
  if (!prepared_keys_.empty()) swarm_->abandon_rounds(prepared_keys_);
  if (in_flight_) {
    // The round ends by its deadline; its result is dropped (see finish_overlap()).
    log::debug("epoch {}: dropping the averaging round in flight at shutdown", in_flight_->epoch);
    in_flight_->done.wait();
  }
}

double CollaborativeOptimizer::now() const {
  return options_.clock ? options_.clock() : system_seconds();
}

void CollaborativeOptimizer::report(bool force) {
  const double t = now();
  if (!force && t - last_report_ < options_.report_period_seconds) return;
  last_report_ = t;
  PeerProgress progress;
  progress.epoch = epoch_;
  progress.samples_accumulated = local_samples_;
  progress.samples_per_second = throughput_.samples_per_second();
  progress.report_time = t;
  progress.client_mode = options_.client_mode;
  progress.loss = loss_;
  progress.test_accuracy = test_accuracy_;
  swarm_->report_progress(progress);
}

bool CollaborativeOptimizer::step(std::size_t batch_size) {
  if (batch_size == 0) return false;
  const double t = now();
  throughput_.update(static_cast<double>(batch_size), std::max(t - last_step_time_, 1e-6));
  last_step_time_ = t;
  last_batch_size_ = batch_size;
  if (options_.config.averaging.mode == AveragingMode::local_updates)
    return diloco_step(batch_size);

  // A batch that arrives after the epoch is complete (the peer was computing
  // it when the others reached the target) opens the next epoch instead of
  // enlarging this one, so every epoch is the target batch, not the target
  // plus one batch per peer.
  if (local_samples_ > 0) {
    const GlobalProgress before = swarm_->global_progress(epoch_);
    if (!is_behind(before) && was_complete(before)) {
      kernels::weighted_accumulate(carried_, grads_, static_cast<float>(batch_size));
      return end_epoch(before, batch_size);
    }
  }
  kernels::weighted_accumulate(accumulated_, grads_, static_cast<float>(batch_size));
  local_samples_ += batch_size;
  report(false);

  const GlobalProgress global = swarm_->global_progress(epoch_);
  if (is_behind(global)) {
    // The swarm stepped without this peer (it missed the round), so its
    // parameters lack that step: take the state of a peer that has it.
    log::info("epoch {} is behind the swarm ({}): loading state from peers", epoch_,
              global.global_epoch);
    if (load_state_from_peers(global.global_epoch - behind_by())) return true;
  }
  prepare_rounds(global);
  if (!is_complete(global)) return false;
  return end_epoch(global, 0);
}

// With overlap the others announce epoch N+1 as soon as round N starts, so
// one epoch ahead means "join round N now", not "missed it".
std::uint64_t CollaborativeOptimizer::behind_by() const {
  return options_.config.averaging.overlap ? 1 : 0;
}

bool CollaborativeOptimizer::is_behind(const GlobalProgress& global) const {
  return global.global_epoch > epoch_ + behind_by();
}

bool CollaborativeOptimizer::round_began(const GlobalProgress& global) const {
  return global.global_epoch > epoch_ ||
         (prepared_epoch_ == epoch_ && swarm_->round_started(gradients_key(epoch_)));
}

bool CollaborativeOptimizer::is_complete(const GlobalProgress& global) const {
  return round_began(global) || global.target_reached(options_.config.target_batch_size);
}

// Before a batch is added: samples counted, not extrapolated — the
// extrapolation is exactly the batches still being computed, this one included.
bool CollaborativeOptimizer::was_complete(const GlobalProgress& global) const {
  return round_began(global) || global.samples_accumulated >= options_.config.target_batch_size;
}

std::string CollaborativeOptimizer::gradients_key(std::uint64_t epoch) const {
  return options_.config.run + ".grad." + std::to_string(epoch);
}

std::string CollaborativeOptimizer::state_key(std::uint64_t epoch) const {
  return options_.config.run + ".state." + std::to_string(epoch);
}

void CollaborativeOptimizer::prepare_rounds(const GlobalProgress& global, bool now) {
  if (prepared_epoch_ == epoch_) return;
  const double lead = std::max(0.1, options_.config.averaging.matchmaking_time);
  if (!now && global.seconds_to_target() > lead) return;
  std::vector<RoundPlan> rounds;
  rounds.push_back({gradients_key(epoch_), {params_.size()}, RoundKind::gradients});
  // The boundary moves to epoch + 1 (unless the swarm is further on, and then
  // this plan is simply not used).
  if ((epoch_ + 1) % options_.config.averaging.average_state_every == 0) {
    RoundPlan state{state_key(epoch_ + 1), {params_.size()}, RoundKind::state};
    for (auto buffer : rule_->state_buffers()) state.sizes.push_back(buffer.size());
    rounds.push_back(std::move(state));
  }
  // Long enough to wait for the boundary and then for the round itself.
  const double timeout =
      lead + std::max(0.0, global.seconds_to_target()) + 2 * deadline_.next_seconds();
  log::debug("epoch {}: matching ahead of time ({:.2f} s to the target)", epoch_,
             global.seconds_to_target());
  match_ahead(epoch_, std::move(rounds), timeout);
}

// Hands the `rounds` of `epoch` to the swarm to match in the background
// (those of another epoch that are still held are let go).
void CollaborativeOptimizer::match_ahead(std::uint64_t epoch, std::vector<RoundPlan> rounds,
                                         double timeout_seconds) {
  prepared_epoch_ = epoch;
  if (!prepared_keys_.empty()) swarm_->abandon_rounds(std::exchange(prepared_keys_, {}));
  for (const auto& r : rounds) prepared_keys_.push_back(r.group_key);
  swarm_->prepare_rounds(std::move(rounds), std::chrono::duration<double>(timeout_seconds));
}

// After the boundary of `ended_epoch`: the gradient round was averaged, the
// state round only if the epoch it was prepared for came and one was due.
void CollaborativeOptimizer::abandon_unused_rounds(std::uint64_t ended_epoch) {
  std::vector<std::string> unused;
  for (auto& key : std::exchange(prepared_keys_, {})) {
    const bool used =
        key == gradients_key(ended_epoch) ||
        (key == state_key(epoch_) && epoch_ % options_.config.averaging.average_state_every == 0);
    if (!used) unused.push_back(std::move(key));
  }
  if (!unused.empty()) swarm_->abandon_rounds(std::move(unused));
}

bool CollaborativeOptimizer::end_epoch(const GlobalProgress& global, std::size_t carried_samples) {
  const std::uint64_t ended_epoch = epoch_;
  RoundReport round =
      options_.config.averaging.overlap ? overlapped_boundary(global) : blocking_boundary(global);
  abandon_unused_rounds(ended_epoch);
  if (carried_samples > 0) {
    // Both boundaries leave accumulated_ zeroed, so carried_ is zero again after the swap.
    accumulated_.swap(carried_);
    local_samples_ = carried_samples;
  }
  finish_boundary(round);
  return true;
}

void CollaborativeOptimizer::finish_boundary(const RoundReport& round) {
  blocked_seconds_total_ += round.communication_blocked_seconds;
  last_round_ = round;
  // Throughput counts compute only: the time spent averaging is not a step's.
  last_step_time_ = now();
  report(true);
}

RoundReport CollaborativeOptimizer::begin_round() const {
  RoundReport round;
  round.epoch = epoch_;
  round.local_samples = local_samples_;
  // A group matched ahead is released by its leader at the leader's next
  // step(), up to one batch of compute after the target: a member waits that
  // long on top of the round (without it, rounds failed whenever a batch took
  // longer than the rounds themselves — 1.7 s batches, 1.0 s deadlines).
  round.deadline_seconds =
      deadline_.next_seconds() +
      std::min(batch_seconds(), std::max(0.0, options_.config.averaging.averaging_timeout));
  return round;
}

double CollaborativeOptimizer::batch_seconds() const {
  const double rate = throughput_.samples_per_second();
  return rate > 0 ? static_cast<double>(last_batch_size_) / rate : 0.0;
}

// Blocking: averages accumulated_ (weight: this epoch's samples) with the
// round's deadline; the outcome and the time it took go into `round`.
void CollaborativeOptimizer::average_accumulated(const std::string& key, RoundReport& round,
                                                 RoundKind kind) {
  const auto started = std::chrono::steady_clock::now();
  round.gradients =
      swarm_->average(key, {std::span<float>(accumulated_)}, static_cast<float>(local_samples_),
                      std::chrono::duration<double>(round.deadline_seconds), kind);
  round.communication_blocked_seconds = seconds_since(started);
  round.averaged = round.gradients.ok;
}

void CollaborativeOptimizer::record_gradient_outcome(const AveragingOutcome& outcome,
                                                     std::uint64_t epoch, double deadline_seconds) {
  if (outcome.ok) {
    deadline_.record_success(outcome.seconds);
    rounds_counter("averaged").inc();
    return;
  }
  if (outcome.seconds >= 0.9 * deadline_seconds) deadline_.record_timeout();
  ++failed_rounds_;
  rounds_counter("local").inc();
  log::warn("epoch {}: averaging failed ({}); proceeding with local gradients", epoch,
            outcome.error);
}

// The caller holds state_mutex_.
void CollaborativeOptimizer::apply_gradients(std::span<float> gradients, std::uint64_t epoch) {
  if (options_.config.optimizer.clip_grad_norm > 0) {
    kernels::clip_by_global_norm(gradients,
                                 static_cast<float>(options_.config.optimizer.clip_grad_norm));
  }
  rule_->step(agreed_, gradients, epoch);
}

RoundReport CollaborativeOptimizer::blocking_boundary(const GlobalProgress& global) {
  RoundReport round = begin_round();
  // Mean local gradient, then the swarm's mean weighted by samples.
  kernels::scale(accumulated_,
                 1.0f / static_cast<float>(std::max<std::uint64_t>(local_samples_, 1)));
  const std::string key = gradients_key(epoch_);
  log::debug("epoch {}: averaging gradients of {} samples (deadline {:.1f} s)", epoch_,
             local_samples_, round.deadline_seconds);
  average_accumulated(key, round);
  record_gradient_outcome(round.gradients, epoch_, round.deadline_seconds);
  {
    std::lock_guard lock(state_mutex_);
    apply_gradients(accumulated_, epoch_);
    round.applied = true;
    round.applied_epoch = epoch_;
    std::fill(accumulated_.begin(), accumulated_.end(), 0.0f);
    local_samples_ = 0;
    epoch_ = std::max(epoch_ + 1, global.global_epoch);
  }
  if (epoch_ % options_.config.averaging.average_state_every == 0) {
    const auto state_started = std::chrono::steady_clock::now();
    round.state_averaged = average_state();
    round.communication_blocked_seconds += seconds_since(state_started);
  }
  return round;
}

RoundReport CollaborativeOptimizer::overlapped_boundary(const GlobalProgress& global) {
  RoundReport round;
  round.overlapped = true;
  round.epoch = epoch_;
  round.local_samples = local_samples_;
  // Usually done by now: it had a whole epoch of compute to travel.
  auto previous = take_round(round.communication_blocked_seconds);

  auto next = std::make_unique<InFlightRound>();
  next->epoch = epoch_;
  next->local_samples = local_samples_;
  next->deadline_seconds = deadline_.next_seconds();
  next->gradients.assign(accumulated_.size(), 0.0f);
  next->gradients.swap(accumulated_);  // accumulated_ starts the next epoch at zero
  kernels::scale(next->gradients,
                 1.0f / static_cast<float>(std::max<std::uint64_t>(local_samples_, 1)));
  round.deadline_seconds = next->deadline_seconds;
  {
    std::lock_guard lock(state_mutex_);
    if (previous) {
      apply_round(*previous, round);
    } else {
      log::info("epoch {}: overlap: no averaged gradients to apply yet (first round)", epoch_);
    }
    local_samples_ = 0;
    epoch_ = std::max(epoch_ + 1, global.global_epoch);
    next->generation = generation_;
    if (epoch_ % options_.config.averaging.average_state_every == 0) {
      // Copies after this boundary's step; they come back at the next boundary.
      next->state_epoch = epoch_;
      next->state.emplace_back(agreed_.begin(), agreed_.end());
      for (auto buffer : rule_->state_buffers())
        next->state.emplace_back(buffer.begin(), buffer.end());
    }
    speculate(next->gradients, next->epoch);
  }
  log::debug("epoch {}: averaging gradients of {} samples in the background (deadline {:.1f} s)",
             next->epoch, next->local_samples, next->deadline_seconds);
  start_round(std::move(next));
  return round;
}

// The caller holds state_mutex_. Training goes on from the agreed state plus
// this peer's own step with `local_mean` — its best guess of the next agreed
// state — so the gradients of the next epoch are not computed on parameters a
// step old. The guess is dropped at the next boundary.
void CollaborativeOptimizer::speculate(std::span<const float> local_mean, std::uint64_t epoch) {
  // Reuses the copy's buffers: this runs at every boundary.
  if (!speculative_ || !rule_->copy_into(*speculative_)) speculative_ = rule_->clone();
  speculative_grads_.assign(local_mean.begin(), local_mean.end());
  if (options_.config.optimizer.clip_grad_norm > 0) {
    kernels::clip_by_global_norm(speculative_grads_,
                                 static_cast<float>(options_.config.optimizer.clip_grad_norm));
  }
  copy_into(params_, agreed_);
  speculative_->step(params_, speculative_grads_, epoch);
}

void CollaborativeOptimizer::start_round(std::unique_ptr<InFlightRound> round) {
  InFlightRound* r = round.get();
  const std::string grad_key = gradients_key(r->epoch);
  const std::string state_round_key = state_key(r->state_epoch);
  const float state_weight = options_.client_mode ? 0.0f : 1.0f;
  // The job owns nothing of the optimizer's but the round (kept alive by in_flight_
  // until `done`) and a reference to the swarm; it never touches the live state.
  r->done = worker_.submit([swarm = swarm_, r, grad_key, state_round_key, state_weight] {
    const auto timeout = std::chrono::duration<double>(r->deadline_seconds);
    r->outcome =
        swarm->average(grad_key, {std::span<float>(r->gradients)},
                       static_cast<float>(r->local_samples), timeout, RoundKind::gradients);
    if (r->state.empty()) return;
    std::vector<std::span<float>> tensors(r->state.begin(), r->state.end());
    r->state_outcome = swarm->average(state_round_key, std::move(tensors), state_weight, timeout,
                                      RoundKind::state);
  });
  in_flight_ = std::move(round);
}

std::unique_ptr<CollaborativeOptimizer::InFlightRound> CollaborativeOptimizer::take_round(
    double& blocked) {
  if (!in_flight_) return nullptr;
  auto round = std::move(in_flight_);
  const auto started = std::chrono::steady_clock::now();
  try {
    round->done.get();
  } catch (const std::exception& e) {
    round->outcome = AveragingOutcome{};
    round->outcome.error = e.what();
    round->state.clear();
  }
  blocked += seconds_since(started);
  return round;
}

// The caller holds state_mutex_.
void CollaborativeOptimizer::apply_round(InFlightRound& round, RoundReport& report) {
  if (round.generation != generation_) {
    log::info("epoch {}: dropping the averaging round of epoch {} (state loaded since)", epoch_,
              round.epoch);
    return;
  }
  if (!round.state.empty()) {
    if (round.state_outcome.ok) {
      // Nothing changed the live state since the copies were taken (only steps
      // and restore() do, and a restore bumps the generation).
      copy_into(agreed_, round.state[0]);
      auto buffers = rule_->state_buffers();
      for (std::size_t i = 0; i < buffers.size(); ++i) copy_into(buffers[i], round.state[i + 1]);
      rule_->state_replaced();
      report.state_averaged = true;
    } else {
      log::info("epoch {}: state averaging skipped ({})", round.state_epoch,
                round.state_outcome.error);
    }
  }
  record_gradient_outcome(round.outcome, round.epoch, round.deadline_seconds);
  apply_gradients(round.gradients, round.epoch);
  report.applied = true;
  report.applied_epoch = round.epoch;
  report.averaged = round.outcome.ok;
  report.gradients = round.outcome;
}

bool CollaborativeOptimizer::finish_overlap() {
  if (options_.config.averaging.mode == AveragingMode::local_updates)
    return in_flight_ && land_outer_round(swarm_->global_progress(epoch_));
  double blocked = 0;
  auto round = take_round(blocked);
  blocked_seconds_total_ += blocked;
  if (!round) return false;
  RoundReport report;
  report.overlapped = true;
  report.epoch = round->epoch;
  report.deadline_seconds = round->deadline_seconds;
  report.communication_blocked_seconds = blocked;
  {
    std::lock_guard lock(state_mutex_);
    apply_round(*round, report);
    copy_into(params_, agreed_);  // training is over: no more guessing
  }
  if (report.applied) last_round_ = report;
  return report.applied;
}

bool CollaborativeOptimizer::average_state() {
  // Average copies, not the live buffers: the lock must not be held across a
  // network round (the state server's snapshot() takes it on the network
  // thread), and a snapshot must never see a half-averaged state.
  std::vector<std::vector<float>> copies;
  {
    std::lock_guard lock(state_mutex_);
    copies.emplace_back(params_.begin(), params_.end());
    for (auto buffer : rule_->state_buffers()) copies.emplace_back(buffer.begin(), buffer.end());
  }
  std::vector<std::span<float>> tensors(copies.begin(), copies.end());
  const std::string key = state_key(epoch_);
  auto outcome =
      swarm_->average(key, std::move(tensors), options_.client_mode ? 0.0f : 1.0f,
                      std::chrono::duration<double>(deadline_.next_seconds()), RoundKind::state);
  if (!outcome.ok) {
    log::info("epoch {}: state averaging skipped ({})", epoch_, outcome.error);
    return false;
  }
  std::lock_guard lock(state_mutex_);
  copy_into(params_, copies[0]);
  auto buffers = rule_->state_buffers();
  for (std::size_t i = 0; i < buffers.size(); ++i) copy_into(buffers[i], copies[i + 1]);
  if (!outer_anchor_.empty()) copy_into(outer_anchor_, params_);
  rule_->state_replaced();
  return true;
}

StateSnapshot CollaborativeOptimizer::snapshot() const {
  std::lock_guard lock(state_mutex_);
  StateSnapshot s;
  s.epoch = epoch_;
  s.optimizer_steps = rule_->steps_taken();
  s.tensors.emplace_back(agreed_.begin(), agreed_.end());
  for (auto buffer : rule_->state_buffers()) s.tensors.emplace_back(buffer.begin(), buffer.end());
  // Local-update mode: the outer optimizer's anchor and momentum travel too, so
  // a peer that loads the state continues the same outer trajectory (with a
  // fresh momentum it drifted from the others and could overshoot).
  if (!outer_anchor_.empty()) {
    s.tensors.push_back(outer_anchor_);
    s.tensors.push_back(outer_momentum_);
  }
  return s;
}

void CollaborativeOptimizer::restore(const StateSnapshot& state) {
  require_finite(state);  // before the lock: a scan of the whole state
  std::lock_guard lock(state_mutex_);
  auto buffers = rule_->state_buffers();
  const std::size_t outer = outer_anchor_.empty() ? 0 : 2;
  if (state.tensors.size() != 1 + buffers.size() + outer ||
      state.tensors[0].size() != params_.size()) {
    throw Error(Errc::invalid_argument, "state snapshot does not match this model and optimizer");
  }
  for (std::size_t i = 0; i < buffers.size(); ++i) {
    if (state.tensors[i + 1].size() != buffers[i].size())
      throw Error(Errc::invalid_argument, "state snapshot: optimizer buffer size mismatch");
  }
  for (std::size_t i = 1 + buffers.size(); i < state.tensors.size(); ++i) {
    if (state.tensors[i].size() != params_.size())
      throw Error(Errc::invalid_argument, "state snapshot: outer optimizer size mismatch");
  }
  copy_into(params_, state.tensors[0]);
  if (agreed_.data() != params_.data()) copy_into(agreed_, state.tensors[0]);
  for (std::size_t i = 0; i < buffers.size(); ++i) copy_into(buffers[i], state.tensors[i + 1]);
  rule_->set_steps_taken(state.optimizer_steps);
  epoch_ = state.epoch;
  ++generation_;  // a round in flight averages gradients of the state just replaced
  // Groups matched ahead for the epoch this peer leaves are not its any more
  // (those matched for the epoch it arrives at, while it downloaded, are).
  if (prepared_epoch_ != state.epoch) {
    if (!prepared_keys_.empty()) swarm_->abandon_rounds(std::exchange(prepared_keys_, {}));
    prepared_epoch_.reset();
  }
  std::fill(accumulated_.begin(), accumulated_.end(), 0.0f);
  local_samples_ = 0;
  if (outer) {
    copy_into(outer_anchor_, state.tensors[1 + buffers.size()]);
    copy_into(outer_momentum_, state.tensors[2 + buffers.size()]);
    // From the anchor, not the donor's parameters: those carry the donor's
    // own inner steps, which its delta will bring to the round already.
    copy_into(params_, outer_anchor_);
  }
  inner_steps_ = 0;
  outer_attempt_ = 0;
  rule_->state_replaced();
}

bool CollaborativeOptimizer::load_state_from_peers(std::uint64_t min_epoch) {
  min_epoch = std::max(min_epoch, epoch_);
  const auto started = std::chrono::steady_clock::now();
  auto state = swarm_->download_state(min_epoch, options_.state_download_timeout);
  blocked_seconds_total_ += seconds_since(started);
  if (!state) return false;
  if (state->epoch < min_epoch) return false;
  try {
    restore(*state);
  } catch (const Error& e) {
    log::warn("downloaded state refused: {}", e.what());
    return false;
  }
  log::info("loaded state of epoch {} from peers", epoch_);
  report(true);
  return true;
}

}  // namespace apiary::optimizer
