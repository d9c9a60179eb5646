#include "nn/local_optimizer.hpp"

#include <stdexcept>

namespace apiary::nn {

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

LocalOptimizer::LocalOptimizer(ParameterRegistry& registry, LocalOptimizerConfig config)
    : registry_(registry), config_(config) {
  const std::size_t n = registry_.total_size();
  const Device device = registry_.device();
  first_moment_ = Tensor::zeros({n}, DType::f32, device);
  if (config_.kind != OptimizerKind::sgd) second_moment_ = Tensor::zeros({n}, DType::f32, device);
}

void apply_optimizer_step(const LocalOptimizerConfig& config, std::span<float> params,
                          std::span<const float> grads, std::span<float> first_moment,
                          std::span<float> second_moment,
                          std::span<const kernels::TensorSlice> slices, std::uint64_t step,
                          Device device) {
  switch (config.kind) {
    case OptimizerKind::sgd:
      kernels::sgd_step(params, grads, first_moment, config.sgd, device);
      break;
    case OptimizerKind::adam:
      kernels::adam_step(params, grads, first_moment, second_moment, step, config.adam, device);
      break;
    case OptimizerKind::lamb:
      kernels::lamb_step(params, grads, first_moment, second_moment, slices, step, config.lamb,
                         device);
      break;
  }
}

float LocalOptimizer::step() {
  const Device device = registry_.device();
  auto grads = registry_.flat_gradients();
  float norm = 0.0f;
  if (config_.clip_norm > 0.0f)
    norm = kernels::clip_by_global_norm(grads, config_.clip_norm, device);
  ++step_;
  auto slices = registry_.slices();
  apply_optimizer_step(config_, registry_.flat_parameters(), grads, first_moment_.span<float>(),
                       second_moment_.span<float>(), slices, step_, device);
  return norm;
}

}  // namespace apiary::nn
