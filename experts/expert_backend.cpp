#include "experts/expert_backend.hpp"

#include "core/error.hpp"
#include "kernels/memory.hpp"

#include <algorithm>
#include <utility>

namespace apiary::experts {

ExpertBackend::ExpertBackend(std::string uid, std::unique_ptr<ExpertModule> module,
                             BackendOptions options)
    : uid_(std::move(uid)), module_(std::move(module)), options_(options) {
  if (!module_) throw Error(Errc::invalid_argument, "expert backend: no module");
  schema_ = module_->schema();
  const auto n = module_->parameters().size();
  std::size_t state_size = 0;
  switch (options_.optimizer.kind) {
    case ExpertOptimizerConfig::Kind::adam:
      state_size = 2 * n;
      break;
    case ExpertOptimizerConfig::Kind::sgd:
      state_size = n;
      break;
    case ExpertOptimizerConfig::Kind::none:
      break;
  }
  optimizer_state_ = nn::Tensor::zeros({state_size}, nn::DType::f32, module_->device());
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
  const auto device = module_->device();
  auto params = module_->parameters();
  std::span<const float> g = module_->gradients();
  if (opt.clip_grad_norm > 0.0f) {
    if (!grad_scratch_.owns_storage() || grad_scratch_.numel() != g.size()) {
      grad_scratch_ = nn::Tensor::empty({g.size()}, nn::DType::f32, device);
    }
    auto clipped = grad_scratch_.span<float>();
    kernels::copy_bytes(clipped.data(), device, g.data(), device, g.size_bytes());
    kernels::clip_by_global_norm(clipped, opt.clip_grad_norm, device);
    g = clipped;
  }
  ++update_count_;
  const auto n = params.size();
  auto state = optimizer_state_.span<float>();
  if (opt.kind == ExpertOptimizerConfig::Kind::adam) {
    kernels::adam_step(params, g, state.subspan(0, n), state.subspan(n, n), update_count_, opt.adam,
                       device);
  } else {
    kernels::sgd_step(params, g, state, opt.sgd, device);
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
  s.parameters.resize(params.size());
  kernels::copy_bytes(s.parameters.data(), kernels::Device::cpu, params.data(), module_->device(),
                      params.size_bytes());
  s.optimizer_state = optimizer_state_.to_vector();
  return s;
}

void ExpertBackend::load_state(const ExpertState& state) {
  std::lock_guard lock(mutex_);
  auto params = module_->parameters();
  if (state.parameters.size() != params.size() ||
      state.optimizer_state.size() != optimizer_state_.numel()) {
    throw Error(Errc::invalid_argument,
                uid_ + ": state has " + std::to_string(state.parameters.size()) +
                    " parameters and " + std::to_string(state.optimizer_state.size()) +
                    " optimizer values, expected " + std::to_string(params.size()) + " and " +
                    std::to_string(optimizer_state_.numel()));
  }
  kernels::copy_bytes(params.data(), module_->device(), state.parameters.data(),
                      kernels::Device::cpu, params.size_bytes());
  kernels::copy_bytes(optimizer_state_.raw(), module_->device(), state.optimizer_state.data(),
                      kernels::Device::cpu, optimizer_state_.size_bytes());
  update_count_ = state.update_count;
}

}  // namespace apiary::experts
