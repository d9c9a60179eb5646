#include "optimizer/step_rule.hpp"

#include "core/error.hpp"
#include "optimizer/optimizer_schedule.hpp"

namespace apiary::optimizer {

ConfiguredStepRule::ConfiguredStepRule(const OptimizerConfig& config, std::size_t num_params,
                                       std::vector<kernels::TensorSlice> slices)
    : config_(config), local_(make_local_optimizer(config, num_params, std::move(slices))) {}

void ConfiguredStepRule::step(std::span<float> params, std::span<const float> grads,
                              std::uint64_t epoch) {
  step_at_epoch(local_, config_, params, grads, epoch);
}

std::unique_ptr<StepRule> ConfiguredStepRule::clone() const {
  return std::make_unique<ConfiguredStepRule>(*this);
}

bool ConfiguredStepRule::copy_into(StepRule& target) const {
  auto* same = dynamic_cast<ConfiguredStepRule*>(&target);
  if (same == nullptr) return false;
  *same = *this;
  return true;
}

ExternalStepRule::ExternalStepRule(ExternalStep external) : external_(std::move(external)) {
  if (!external_.step) throw Error(Errc::invalid_argument, "external step rule: no step function");
}

void ExternalStepRule::step(std::span<float> params, std::span<const float> grads,
                            std::uint64_t epoch) {
  external_.step(params, grads, epoch);
  ++steps_;
}

void ExternalStepRule::state_replaced() {
  if (external_.state_replaced) external_.state_replaced();
}

}  // namespace apiary::optimizer
