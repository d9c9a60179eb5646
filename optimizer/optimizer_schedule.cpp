#include "optimizer/optimizer_schedule.hpp"

#include "core/error.hpp"

#include <cmath>
#include <stdexcept>

namespace apiary::optimizer {

nn::LocalOptimizerConfig kernel_config(const OptimizerConfig& c) {
  nn::LocalOptimizerConfig out;
  switch (c.name) {
    case OptimizerName::sgd:
      out.kind = nn::OptimizerKind::sgd;
      break;
    case OptimizerName::adam:
    case OptimizerName::adamw:
      out.kind = nn::OptimizerKind::adam;
      break;
    case OptimizerName::lamb:
      out.kind = nn::OptimizerKind::lamb;
      break;
  }
  out.sgd = {static_cast<float>(c.lr), static_cast<float>(c.momentum),
             static_cast<float>(c.weight_decay), c.nesterov};
  out.adam = {static_cast<float>(c.lr),           static_cast<float>(c.beta1),
              static_cast<float>(c.beta2),        static_cast<float>(c.eps),
              static_cast<float>(c.weight_decay), c.name == OptimizerName::adamw};
  out.lamb = {static_cast<float>(c.lr), static_cast<float>(c.beta1), static_cast<float>(c.beta2),
              static_cast<float>(c.eps), static_cast<float>(c.weight_decay)};
  return out;  // clip_norm stays 0: the collaborative optimizer clips (the mean gradients)
}

LocalOptimizer make_local_optimizer(const OptimizerConfig& config, std::size_t num_params,
                                    std::vector<kernels::TensorSlice> slices) {
  return LocalOptimizer(kernel_config(config), num_params, std::move(slices));
}

double learning_rate(const OptimizerConfig& config, std::uint64_t epoch) noexcept {
  if (config.warmup_epochs > 0 && epoch < config.warmup_epochs) {
    return config.lr * static_cast<double>(epoch + 1) / static_cast<double>(config.warmup_epochs);
  }
  const double decay_epochs =
      static_cast<double>(epoch - std::min<std::uint64_t>(epoch, config.warmup_epochs));
  return config.lr * std::pow(config.lr_decay_per_epoch, decay_epochs);
}

void step_at_epoch(LocalOptimizer& optimizer, const OptimizerConfig& config,
                   std::span<float> params, std::span<const float> grads, std::uint64_t epoch) {
  optimizer.set_learning_rate(static_cast<float>(learning_rate(config, epoch)));
  try {
    optimizer.step(params, grads);
  } catch (const std::invalid_argument& e) {
    throw Error(Errc::invalid_argument, e.what());
  }
}

}  // namespace apiary::optimizer
