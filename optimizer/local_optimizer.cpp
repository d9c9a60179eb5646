#include "optimizer/local_optimizer.hpp"

#include "core/error.hpp"

#include <stdexcept>

#include <cmath>

namespace apiary::optimizer {

LocalOptimizer::LocalOptimizer(OptimizerConfig config, std::size_t num_params,
                               std::vector<kernels::TensorSlice> slices)
    : config_(std::move(config)), num_params_(num_params), slices_(std::move(slices)) {
  if (slices_.empty()) slices_.push_back({0, num_params_});
  const auto& c = config_;
  try {
    // AdamW is Adam with decoupled weight decay.
    kernel_config_.kind = nn::parse_optimizer_kind(
        c.name == OptimizerName::adamw ? "adam" : std::string(name_of(c.name)));
  } catch (const std::invalid_argument& e) {
    throw Error(Errc::invalid_argument, e.what());
  }
  kernel_config_.sgd = {static_cast<float>(c.lr), static_cast<float>(c.momentum),
                        static_cast<float>(c.weight_decay), c.nesterov};
  kernel_config_.adam = {static_cast<float>(c.lr),           static_cast<float>(c.beta1),
                         static_cast<float>(c.beta2),        static_cast<float>(c.eps),
                         static_cast<float>(c.weight_decay), c.name == OptimizerName::adamw};
  kernel_config_.lamb = {static_cast<float>(c.lr), static_cast<float>(c.beta1),
                         static_cast<float>(c.beta2), static_cast<float>(c.eps),
                         static_cast<float>(c.weight_decay)};
  if (config_.name == OptimizerName::sgd) {
    if (config_.momentum > 0) buf1_.assign(num_params_, 0.0f);
  } else {
    buf1_.assign(num_params_, 0.0f);
    buf2_.assign(num_params_, 0.0f);
  }
}

double LocalOptimizer::learning_rate(std::uint64_t epoch) const noexcept {
  if (config_.warmup_epochs > 0 && epoch < config_.warmup_epochs) {
    return config_.lr * static_cast<double>(epoch + 1) / static_cast<double>(config_.warmup_epochs);
  }
  const double decay_epochs =
      static_cast<double>(epoch - std::min<std::uint64_t>(epoch, config_.warmup_epochs));
  return config_.lr * std::pow(config_.lr_decay_per_epoch, decay_epochs);
}

void LocalOptimizer::step(std::span<float> params, std::span<const float> grads,
                          std::uint64_t epoch) {
  if (params.size() != num_params_ || grads.size() != num_params_) {
    throw Error(Errc::invalid_argument, "optimizer step: expected " + std::to_string(num_params_) +
                                            " parameters and gradients, got " +
                                            std::to_string(params.size()) + " and " +
                                            std::to_string(grads.size()));
  }
  ++steps_;
  nn::LocalOptimizerConfig step_config = kernel_config_;
  step_config.set_learning_rate(static_cast<float>(learning_rate(epoch)));
  nn::apply_optimizer_step(step_config, params, grads, buf1_, buf2_, slices_, steps_);
}

std::vector<std::span<float>> LocalOptimizer::state_buffers() {
  std::vector<std::span<float>> out;
  if (!buf1_.empty()) out.emplace_back(buf1_);
  if (!buf2_.empty()) out.emplace_back(buf2_);
  return out;
}

std::vector<std::string> LocalOptimizer::state_names() const {
  if (config_.name == OptimizerName::sgd)
    return buf1_.empty() ? std::vector<std::string>{} : std::vector<std::string>{"momentum"};
  return {"exp_avg", "exp_avg_sq"};
}

}  // namespace apiary::optimizer
