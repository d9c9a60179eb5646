#pragma once
// The local (single-peer) optimizer: SGD (momentum/Nesterov), Adam/AdamW or
// LAMB from kernels/optimizer.hpp over flat fp32 buffers, with optional
// gradient clipping by global norm. Its statistics are flat buffers on the
// optimizer's device (state_buffers()), so the collaborative optimizer
// (optimizer/) can average them with peers, checkpoint them and hand them to
// late joiners; it sets the learning rate of each step (its schedule).
// Errors: std::invalid_argument for unknown names and buffer size mismatches.
#include "kernels/optimizer.hpp"
#include "nn/parameters.hpp"

#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace apiary::nn {

enum class OptimizerKind { sgd, adam, lamb };
OptimizerKind parse_optimizer_kind(const std::string& name);  // "sgd" | "adam" | "lamb"
std::string to_string(OptimizerKind kind);

struct LocalOptimizerConfig {
  OptimizerKind kind = OptimizerKind::adam;
  kernels::SgdConfig sgd;
  kernels::AdamConfig adam;  // adam.decoupled_weight_decay: AdamW
  kernels::LambConfig lamb;
  float clip_norm = 0.0f;  // > 0: clip gradients to this global norm first (registry steps)
  void set_learning_rate(float lr);
};

class LocalOptimizer {
 public:
  // Over flat buffers of `num_params` values on `device`; `slices` name the
  // tensors inside them (LAMB's trust ratio is per tensor; empty: one tensor).
  LocalOptimizer(LocalOptimizerConfig config, std::size_t num_params,
                 std::vector<kernels::TensorSlice> slices = {}, Device device = Device::cpu);
  // Over a registry's parameters and gradients (its device, its tensors).
  LocalOptimizer(ParameterRegistry& registry, LocalOptimizerConfig config);
  // Copies own their statistics (the collaborative optimizer's speculative step).
  LocalOptimizer(const LocalOptimizer& other);
  LocalOptimizer& operator=(const LocalOptimizer& other);

  // One step of `grads` (already clipped, if wanted) on `params`.
  void step(std::span<float> params, std::span<const float> grads);
  // Registry optimizers: one step with the registry's current gradients,
  // clipped first when clip_norm > 0. Returns the norm when clipping, else 0.
  float step();

  std::uint64_t steps_taken() const noexcept { return step_; }
  void set_steps_taken(std::uint64_t steps) noexcept { step_ = steps; }
  // For schedules: changes the learning rate of the following steps.
  void set_learning_rate(float lr) { config_.set_learning_rate(lr); }
  const LocalOptimizerConfig& config() const noexcept { return config_; }

  // The statistics, each num_params long: SGD's momentum (none without
  // momentum), Adam's and LAMB's exp_avg and exp_avg_sq.
  std::vector<std::span<float>> state_buffers();
  std::vector<std::string> state_names() const;

 private:
  ParameterRegistry* registry_ = nullptr;  // registry optimizers only
  LocalOptimizerConfig config_;
  std::size_t num_params_ = 0;
  std::vector<kernels::TensorSlice> slices_;
  Device device_ = Device::cpu;
  std::uint64_t step_ = 0;
  Tensor first_moment_;   // momentum buffer (SGD) or exp_avg (Adam/LAMB)
  Tensor second_moment_;  // exp_avg_sq (Adam/LAMB)
};

}  // namespace apiary::nn
