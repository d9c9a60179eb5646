#pragma once
// A local (single-peer) optimizer over a ParameterRegistry's flat buffers:
// SGD (momentum/Nesterov), Adam/AdamW or LAMB from kernels/optimizer.hpp, with
// optional gradient clipping by global norm. State buffers live on the
// registry's device. Errors: std::invalid_argument for unknown names.
#include "kernels/optimizer.hpp"
#include "nn/parameters.hpp"

#include <cstdint>
#include <span>
#include <string>

namespace apiary::nn {

enum class OptimizerKind { sgd, adam, lamb };
OptimizerKind parse_optimizer_kind(const std::string& name);  // "sgd" | "adam" | "lamb"
std::string to_string(OptimizerKind kind);

struct LocalOptimizerConfig {
  OptimizerKind kind = OptimizerKind::adam;
  kernels::SgdConfig sgd;
  kernels::AdamConfig adam;
  kernels::LambConfig lamb;
  float clip_norm = 0.0f;  // > 0: clip gradients to this global norm first
  void set_learning_rate(float lr);
};

// One step of `config`'s optimizer over flat buffers — the core shared by
// LocalOptimizer and the collaborative optimizer's (optimizer/local_optimizer).
// `step` counts the steps including this one (Adam/LAMB bias correction);
// `first_moment` may be empty for SGD without momentum; `second_moment` is
// unused by SGD; `slices` are LAMB's tensors. Clipping is the caller's.
void apply_optimizer_step(const LocalOptimizerConfig& config, std::span<float> params,
                          std::span<const float> grads, std::span<float> first_moment,
                          std::span<float> second_moment,
                          std::span<const kernels::TensorSlice> slices, std::uint64_t step,
                          Device device = Device::cpu);

class LocalOptimizer {
 public:
  LocalOptimizer(ParameterRegistry& registry, LocalOptimizerConfig config);
  // Applies one step using the registry's current gradients. Returns the
  // gradient norm when clipping is on, else 0.
  float step();
  std::uint64_t steps_taken() const noexcept { return step_; }
  // For schedules: changes the learning rate of the following steps.
  void set_learning_rate(float lr) { config_.set_learning_rate(lr); }
  const LocalOptimizerConfig& config() const noexcept { return config_; }

 private:
  ParameterRegistry& registry_;
  LocalOptimizerConfig config_;
  std::uint64_t step_ = 0;
  Tensor first_moment_;   // momentum buffer (SGD) or exp_avg (Adam/LAMB)
  Tensor second_moment_;  // exp_avg_sq (Adam/LAMB)
};

}  // namespace apiary::nn
