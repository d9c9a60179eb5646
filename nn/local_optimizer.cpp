#include "nn/local_optimizer.hpp"

#include <stdexcept>

namespace apiary::nn {

namespace {

bool has_first_moment(const LocalOptimizerConfig& config) {
  return config.kind != OptimizerKind::sgd || config.sgd.momentum > 0.0f;
}

// A deep copy of an owned buffer (an unallocated one stays so).
Tensor copy_of(const Tensor& tensor) {
  return tensor.owns_storage() ? tensor.to(tensor.device()) : Tensor();
}

// Copies `from` into `to`, reusing its storage when it fits.
void assign(Tensor& to, const Tensor& from) {
  if (to.owns_storage() && from.owns_storage() && to.numel() == from.numel() &&
      to.device() == from.device()) {
    to.copy_from(from);
  } else {
    to = copy_of(from);
  }
}

std::span<float> floats(Tensor& tensor) {
  return tensor.owns_storage() ? tensor.span<float>() : std::span<float>();
}

}  // namespace
OptimizerKind parse_optimizer_kind(const std::string& name) {
  if (name == "sgd") return OptimizerKind::sgd;
  if (name == "adam") return OptimizerKind::adam;
  if (name == "lamb") return OptimizerKind::lamb;
  throw std::invalid_argument("unknown optimizer '" + name + "' (expected sgd, adam or lamb)");
}

std::string to_string(OptimizerKind kind) {
  switch (kind) {
    case OptimizerKind::sgd:
      return "sgd";
    case OptimizerKind::adam:
      return "adam";
    case OptimizerKind::lamb:
      return "lamb";
  }
  return "?";
}

void LocalOptimizerConfig::set_learning_rate(float lr) {
  sgd.lr = lr;
  adam.lr = lr;
  lamb.lr = lr;
}

LocalOptimizer::LocalOptimizer(LocalOptimizerConfig config, std::size_t num_params,
                               std::vector<kernels::TensorSlice> slices, Device device)
    : config_(config), num_params_(num_params), slices_(std::move(slices)), device_(device) {
  if (slices_.empty()) slices_.push_back({0, num_params_});
  // SGD without momentum keeps no statistics (and so averages and checkpoints none).
  if (has_first_moment(config_)) first_moment_ = Tensor::zeros({num_params_}, DType::f32, device_);
  if (config_.kind != OptimizerKind::sgd)
    second_moment_ = Tensor::zeros({num_params_}, DType::f32, device_);
}

LocalOptimizer::LocalOptimizer(ParameterRegistry& registry, LocalOptimizerConfig config)
    : LocalOptimizer(config, registry.total_size(), registry.slices(), registry.device()) {
  registry_ = &registry;
}

LocalOptimizer::LocalOptimizer(const LocalOptimizer& other)
    : registry_(other.registry_),
      config_(other.config_),
      num_params_(other.num_params_),
      slices_(other.slices_),
      device_(other.device_),
      step_(other.step_),
      first_moment_(copy_of(other.first_moment_)),
      second_moment_(copy_of(other.second_moment_)) {}

LocalOptimizer& LocalOptimizer::operator=(const LocalOptimizer& other) {
  if (this == &other) return *this;
  registry_ = other.registry_;
  config_ = other.config_;
  num_params_ = other.num_params_;
  slices_ = other.slices_;
  device_ = other.device_;
  step_ = other.step_;
  assign(first_moment_, other.first_moment_);
  assign(second_moment_, other.second_moment_);
  return *this;
}

void LocalOptimizer::step(std::span<float> params, std::span<const float> grads) {
  if (params.size() != num_params_ || grads.size() != num_params_) {
    throw std::invalid_argument("optimizer step: expected " + std::to_string(num_params_) +
                                " parameters and gradients, got " + std::to_string(params.size()) +
                                " and " + std::to_string(grads.size()));
  }
  ++step_;  // counts this step (Adam/LAMB bias correction)
  auto m = floats(first_moment_), v = floats(second_moment_);
  switch (config_.kind) {
    case OptimizerKind::sgd:
      kernels::sgd_step(params, grads, m, config_.sgd, device_);
      break;
    case OptimizerKind::adam:
      kernels::adam_step(params, grads, m, v, step_, config_.adam, device_);
      break;
    case OptimizerKind::lamb:
      kernels::lamb_step(params, grads, m, v, slices_, step_, config_.lamb, device_);
      break;
  }
}

float LocalOptimizer::step() {
  if (!registry_) throw std::logic_error("LocalOptimizer::step(): not a registry's optimizer");
  auto grads = registry_->flat_gradients();
  float norm = 0.0f;
  if (config_.clip_norm > 0.0f)
    norm = kernels::clip_by_global_norm(grads, config_.clip_norm, device_);
  step(registry_->flat_parameters(), grads);
  return norm;
}

std::vector<std::span<float>> LocalOptimizer::state_buffers() {
  std::vector<std::span<float>> out;
  if (first_moment_.owns_storage()) out.push_back(first_moment_.span<float>());
  if (second_moment_.owns_storage()) out.push_back(second_moment_.span<float>());
  return out;
}

std::vector<std::string> LocalOptimizer::state_names() const {
  if (config_.kind == OptimizerKind::sgd)
    return first_moment_.owns_storage() ? std::vector<std::string>{"momentum"}
                                        : std::vector<std::string>{};
  return {"exp_avg", "exp_avg_sq"};
}

}  // namespace apiary::nn
