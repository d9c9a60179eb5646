#include "optimizer/collaborative_optimizer.hpp"

#include "core/error.hpp"
#include "core/log.hpp"
#include "core/metrics.hpp"
#include "kernels/reduce.hpp"

#include <algorithm>
#include <chrono>

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
      local_(options_.optimizer, params.size(), std::move(slices)),
      deadline_(DeadlinePolicy{
          .initial_seconds = options_.averaging.averaging_timeout,
          .min_seconds = 1.0,
          .max_seconds = std::max(4.0 * options_.averaging.averaging_timeout, 10.0)}) {
  if (params.size() != grads.size() || params.empty()) {
    throw Error(Errc::invalid_argument, "collaborative optimizer: parameters (" +
                                            std::to_string(params.size()) + ") and gradients (" +
                                            std::to_string(grads.size()) +
                                            ") must be non-empty and the same size");
  }
  options_.averaging.average_state_every =
      std::max<std::uint32_t>(1, options_.averaging.average_state_every);
  accumulated_.assign(params.size(), 0.0f);
  if (options_.averaging.mode == "local_updates") {
    outer_anchor_.assign(params.begin(), params.end());
    outer_momentum_.assign(params.size(), 0.0f);
  }
  last_step_time_ = now();
  if (!options_.client_mode) swarm_->serve_state([this] { return snapshot(); });
  if (options_.load_state_on_start) load_state_from_peers();
  report(true);
}

CollaborativeOptimizer::~CollaborativeOptimizer() {
  // Stop offering a state that is about to be destroyed.
  if (!options_.client_mode) swarm_->serve_state({});
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
  if (options_.averaging.mode == "local_updates") return diloco_step(batch_size);

  kernels::weighted_accumulate(accumulated_, grads_, static_cast<float>(batch_size));
  local_samples_ += batch_size;
  report(false);

  const GlobalProgress global = swarm_->global_progress(epoch_);
  if (global.global_epoch > epoch_) {
    // The swarm stepped without this peer (it missed the round), so its
    // parameters lack that step: take the state of a peer that has it.
    log::info("epoch {} is behind the swarm ({}): loading state from peers", epoch_,
              global.global_epoch);
    if (load_state_from_peers(global.global_epoch)) return true;
  }
  const bool ready =
      global.global_epoch > epoch_ || global.target_reached(options_.target_batch_size);
  if (!ready) return false;
  return end_epoch(global);
}

bool CollaborativeOptimizer::end_epoch(const GlobalProgress& global) {
  RoundReport round;
  round.epoch = epoch_;
  round.local_samples = local_samples_;
  round.deadline_seconds = deadline_.next_seconds();
  // Mean local gradient, then the swarm's mean weighted by samples.
  kernels::scale(accumulated_,
                 1.0f / static_cast<float>(std::max<std::uint64_t>(local_samples_, 1)));
  const std::string key = options_.run + ".grad." + std::to_string(epoch_);
  log::debug("epoch {}: averaging gradients of {} samples (deadline {:.1f} s)", epoch_,
             local_samples_, round.deadline_seconds);
  round.gradients =
      swarm_->average(key, {std::span<float>(accumulated_)}, static_cast<float>(local_samples_),
                      std::chrono::duration<double>(round.deadline_seconds));
  round.averaged = round.gradients.ok;
  if (round.averaged) {
    deadline_.record_success(round.gradients.seconds);
    rounds_counter("averaged").inc();
  } else {
    if (round.gradients.seconds >= 0.9 * round.deadline_seconds) deadline_.record_timeout();
    ++failed_rounds_;
    rounds_counter("local").inc();
    log::warn("epoch {}: averaging failed ({}); proceeding with local gradients", epoch_,
              round.gradients.error);
  }
  {
    std::lock_guard lock(state_mutex_);
    if (options_.optimizer.clip_grad_norm > 0) {
      kernels::clip_by_global_norm(accumulated_,
                                   static_cast<float>(options_.optimizer.clip_grad_norm));
    }
    local_.step(params_, accumulated_, epoch_);
    std::fill(accumulated_.begin(), accumulated_.end(), 0.0f);
    local_samples_ = 0;
    epoch_ = std::max(epoch_ + 1, global.global_epoch);
  }
  if (epoch_ % options_.averaging.average_state_every == 0) {
    average_state();
    round.state_averaged = true;
  }
  last_round_ = round;
  // Throughput counts compute only: the time spent averaging is not a step's.
  last_step_time_ = now();
  report(true);
  return true;
}

void CollaborativeOptimizer::average_state() {
  // Average copies, not the live buffers: the lock must not be held across a
  // network round (the state server's snapshot() takes it on the network
  // thread), and a snapshot must never see a half-averaged state.
  std::vector<std::vector<float>> copies;
  {
    std::lock_guard lock(state_mutex_);
    copies.emplace_back(params_.begin(), params_.end());
    for (auto buffer : local_.state_buffers()) copies.emplace_back(buffer.begin(), buffer.end());
  }
  std::vector<std::span<float>> tensors(copies.begin(), copies.end());
  const std::string key = options_.run + ".state." + std::to_string(epoch_);
  auto outcome = swarm_->average(key, std::move(tensors), options_.client_mode ? 0.0f : 1.0f,
                                 std::chrono::duration<double>(deadline_.next_seconds()));
  if (!outcome.ok) {
    log::info("epoch {}: state averaging skipped ({})", epoch_, outcome.error);
    return;
  }
  std::lock_guard lock(state_mutex_);
  copy_into(params_, copies[0]);
  auto buffers = local_.state_buffers();
  for (std::size_t i = 0; i < buffers.size(); ++i) copy_into(buffers[i], copies[i + 1]);
  if (!outer_anchor_.empty()) copy_into(outer_anchor_, params_);
}

bool CollaborativeOptimizer::diloco_step(std::size_t batch_size) {
  {
    std::lock_guard lock(state_mutex_);
    local_.step(params_, grads_, epoch_);
  }
  local_samples_ += batch_size;
  ++inner_steps_;
  report(false);
  if (inner_steps_ % options_.averaging.local_steps != 0) return false;

  RoundReport round;
  round.epoch = epoch_;
  round.local_samples = local_samples_;
  round.deadline_seconds = deadline_.next_seconds();
  // Pseudo-gradient: how far the inner steps moved the parameters.
  for (std::size_t i = 0; i < params_.size(); ++i) accumulated_[i] = outer_anchor_[i] - params_[i];
  const std::string key = options_.run + ".outer." + std::to_string(epoch_);
  round.gradients =
      swarm_->average(key, {std::span<float>(accumulated_)}, static_cast<float>(local_samples_),
                      std::chrono::duration<double>(round.deadline_seconds));
  round.averaged = round.gradients.ok;
  if (round.averaged) {
    deadline_.record_success(round.gradients.seconds);
  } else {
    ++failed_rounds_;
    log::warn("outer step {}: averaging failed ({}); applying the local delta", epoch_,
              round.gradients.error);
  }
  {
    std::lock_guard lock(state_mutex_);
    kernels::SgdConfig outer{static_cast<float>(options_.averaging.outer_lr),
                             static_cast<float>(options_.averaging.outer_momentum), 0.0f, true};
    kernels::sgd_step(outer_anchor_, accumulated_, outer_momentum_, outer);
    copy_into(params_, outer_anchor_);
    local_samples_ = 0;
    epoch_ += 1;
  }
  last_round_ = round;
  last_step_time_ = now();
  report(true);
  return true;
}

StateSnapshot CollaborativeOptimizer::snapshot() const {
  std::lock_guard lock(state_mutex_);
  StateSnapshot s;
  s.epoch = epoch_;
  s.optimizer_steps = local_.steps_taken();
  s.tensors.emplace_back(params_.begin(), params_.end());
  for (auto buffer : const_cast<LocalOptimizer&>(local_).state_buffers())
    s.tensors.emplace_back(buffer.begin(), buffer.end());
  return s;
}

void CollaborativeOptimizer::restore(const StateSnapshot& state) {
  std::lock_guard lock(state_mutex_);
  auto buffers = local_.state_buffers();
  if (state.tensors.size() != 1 + buffers.size() || state.tensors[0].size() != params_.size()) {
    throw Error(Errc::invalid_argument, "state snapshot does not match this model and optimizer");
  }
  for (std::size_t i = 0; i < buffers.size(); ++i) {
    if (state.tensors[i + 1].size() != buffers[i].size())
      throw Error(Errc::invalid_argument, "state snapshot: optimizer buffer size mismatch");
  }
  copy_into(params_, state.tensors[0]);
  for (std::size_t i = 0; i < buffers.size(); ++i) copy_into(buffers[i], state.tensors[i + 1]);
  local_.set_steps_taken(state.optimizer_steps);
  epoch_ = state.epoch;
  std::fill(accumulated_.begin(), accumulated_.end(), 0.0f);
  local_samples_ = 0;
  if (!outer_anchor_.empty()) {
    copy_into(outer_anchor_, params_);
    std::fill(outer_momentum_.begin(), outer_momentum_.end(), 0.0f);
  }
}

bool CollaborativeOptimizer::load_state_from_peers(std::uint64_t min_epoch) {
  min_epoch = std::max(min_epoch, epoch_);
  auto state = swarm_->download_state(min_epoch, options_.state_download_timeout);
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
