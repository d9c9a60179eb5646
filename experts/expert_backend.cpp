#include "experts/expert_backend.hpp"

#include "core/error.hpp"

#include <algorithm>
#include <utility>

namespace apiary::experts {

ExpertBackend::ExpertBackend(std::string uid, std::unique_ptr<ExpertModule> module,
                             BackendOptions options)
    : uid_(std::move(uid)), module_(std::move(module)), options_(options) {
  if (!module_) throw Error(Errc::invalid_argument, "expert backend: no module");
  schema_ = module_->schema();
  const auto n = module_->parameters().size();
  switch (options_.optimizer.kind) {
    case ExpertOptimizerConfig::Kind::adam:
      optimizer_state_.assign(2 * n, 0.0f);
      break;
    case ExpertOptimizerConfig::Kind::sgd:
      optimizer_state_.assign(n, 0.0f);
      break;
    case ExpertOptimizerConfig::Kind::none:
      break;
  }
}

void ExpertBackend::check_forward(std::span<const std::size_t> input_shape) const {
  schema_.input.check_shape(input_shape, uid_ + " input");
  if (input_shape[0] > options_.max_batch_size) {
    throw Error(Errc::invalid_argument,
                uid_ + " input: batch of " + std::to_string(input_shape[0]) +
                    " samples exceeds max_batch_size " + std::to_string(options_.max_batch_size));
  }
}

void ExpertBackend::check_backward(std::span<const std::size_t> input_shape,
                                   std::span<const std::size_t> grad_output_shape) const {
  check_forward(input_shape);
  schema_.output.check_shape(grad_output_shape, uid_ + " grad_output");
  if (grad_output_shape[0] != input_shape[0]) {
    throw Error(Errc::invalid_argument, uid_ + " grad_output: expected " +
                                            std::to_string(input_shape[0]) + " rows, got " +
                                            std::to_string(grad_output_shape[0]));
  }
}

HostTensor ExpertBackend::forward(const HostTensor& input) {
  check_forward(input.shape);
  schema_.input.check(input, uid_ + " input");
  std::lock_guard lock(mutex_);
  return module_->forward(input);
}

HostTensor ExpertBackend::backward(const HostTensor& input, const HostTensor& grad_output) {
  check_backward(input.shape, grad_output.shape);
  schema_.input.check(input, uid_ + " input");
  schema_.output.check(grad_output, uid_ + " grad_output");
  std::lock_guard lock(mutex_);
  auto grad_input = module_->backward(input, grad_output);
  step_locked();
  return grad_input;
}

void ExpertBackend::step_locked() {
  const auto& opt = options_.optimizer;
  if (opt.kind == ExpertOptimizerConfig::Kind::none) return;
  auto params = module_->parameters();
  auto grads = module_->gradients();
  std::span<const float> g = grads;
  if (opt.clip_grad_norm > 0.0f) {
    grad_scratch_.assign(grads.begin(), grads.end());
    kernels::clip_by_global_norm(grad_scratch_, opt.clip_grad_norm);
    g = grad_scratch_;
  }
  ++update_count_;
  const auto n = params.size();
  if (opt.kind == ExpertOptimizerConfig::Kind::adam) {
    std::span<float> state = optimizer_state_;
    kernels::adam_step(params, g, state.subspan(0, n), state.subspan(n, n), update_count_,
                       opt.adam);
  } else {
    kernels::sgd_step(params, g, optimizer_state_, opt.sgd);
  }
}

std::uint64_t ExpertBackend::update_count() const {
  std::lock_guard lock(mutex_);
  return update_count_;
}

ExpertState ExpertBackend::state() const {
  std::lock_guard lock(mutex_);
  ExpertState s;
  s.update_count = update_count_;
  auto params = std::as_const(*module_).parameters();
  s.parameters.assign(params.begin(), params.end());
  s.optimizer_state = optimizer_state_;
  return s;
}

void ExpertBackend::load_state(const ExpertState& state) {
  std::lock_guard lock(mutex_);
  auto params = module_->parameters();
  if (state.parameters.size() != params.size() ||
      state.optimizer_state.size() != optimizer_state_.size()) {
    throw Error(Errc::invalid_argument,
                uid_ + ": state has " + std::to_string(state.parameters.size()) +
                    " parameters and " + std::to_string(state.optimizer_state.size()) +
                    " optimizer values, expected " + std::to_string(params.size()) + " and " +
                    std::to_string(optimizer_state_.size()));
  }
  std::copy(state.parameters.begin(), state.parameters.end(), params.begin());
  optimizer_state_ = state.optimizer_state;
  update_count_ = state.update_count;
}

}  // namespace apiary::experts
