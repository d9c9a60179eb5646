#include "optimizer/local_optimizer.hpp"

#include "core/error.hpp"

#include <cmath>

namespace apiary::optimizer {

LocalOptimizer::LocalOptimizer(OptimizerConfig config, std::size_t num_params,
                               std::vector<kernels::TensorSlice> slices)
    : config_(std::move(config)), num_params_(num_params), slices_(std::move(slices)) {
  if (slices_.empty()) slices_.push_back({0, num_params_});
  if (config_.name == "sgd") {
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
  const auto lr = static_cast<float>(learning_rate(epoch));
  ++steps_;
  const auto& c = config_;
  if (c.name == "sgd") {
    kernels::SgdConfig sgd{lr, static_cast<float>(c.momentum), static_cast<float>(c.weight_decay),
                           c.nesterov};
    std::vector<float> no_momentum;
    kernels::sgd_step(params, grads,
                      c.momentum > 0 ? std::span<float>(buf1_) : std::span<float>(no_momentum),
                      sgd);
  } else if (c.name == "adam" || c.name == "adamw") {
    kernels::AdamConfig adam{lr,
                             static_cast<float>(c.beta1),
                             static_cast<float>(c.beta2),
                             static_cast<float>(c.eps),
                             static_cast<float>(c.weight_decay),
                             c.name == "adamw"};
    kernels::adam_step(params, grads, buf1_, buf2_, steps_, adam);
  } else {
    kernels::LambConfig lamb{lr, static_cast<float>(c.beta1), static_cast<float>(c.beta2),
                             static_cast<float>(c.eps), static_cast<float>(c.weight_decay)};
    kernels::lamb_step(params, grads, buf1_, buf2_, slices_, steps_, lamb);
  }
}

std::vector<std::span<float>> LocalOptimizer::state_buffers() {
  std::vector<std::span<float>> out;
  if (!buf1_.empty()) out.emplace_back(buf1_);
  if (!buf2_.empty()) out.emplace_back(buf2_);
  return out;
}

std::vector<std::string> LocalOptimizer::state_names() const {
  if (config_.name == "sgd")
    return buf1_.empty() ? std::vector<std::string>{} : std::vector<std::string>{"momentum"};
  return {"exp_avg", "exp_avg_sq"};
}

}  // namespace apiary::optimizer
