#pragma once
// The local optimizer a peer applies at each collaborative step: SGD (momentum,
// Nesterov), Adam, AdamW or LAMB (nn::apply_optimizer_step over kernels/), over
// one flat fp32 parameter buffer on the host, with a per-epoch learning-rate
// schedule (linear warmup, then multiplicative decay). Its statistics are exposed as flat buffers
// so they can be averaged with peers, checkpointed and downloaded by late joiners. Errors: throws
// apiary::Error{invalid_argument} on size mismatches.
#include "kernels/optimizer.hpp"
#include "nn/local_optimizer.hpp"
#include "optimizer/run_config.hpp"

#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace apiary::optimizer {

class LocalOptimizer {
 public:
  // `slices` name the tensors inside the flat buffer (LAMB's trust ratio is per tensor).
  LocalOptimizer(OptimizerConfig config, std::size_t num_params,
                 std::vector<kernels::TensorSlice> slices = {});

  // One step with `grads` (already averaged), learning rate for `epoch`.
  void step(std::span<float> params, std::span<const float> grads, std::uint64_t epoch);

  double learning_rate(std::uint64_t epoch) const noexcept;
  std::uint64_t steps_taken() const noexcept { return steps_; }
  void set_steps_taken(std::uint64_t steps) noexcept { steps_ = steps; }

  // Optimizer statistics, each num_params long (empty list for plain SGD
  // without momentum). Averaged with peers every K epochs; checkpointed.
  std::vector<std::span<float>> state_buffers();
  std::vector<std::string> state_names() const;
  const OptimizerConfig& config() const noexcept { return config_; }

 private:
  OptimizerConfig config_;
  nn::LocalOptimizerConfig kernel_config_;  // the same, as kernel settings (lr set per step)
  std::size_t num_params_;
  std::vector<kernels::TensorSlice> slices_;
  std::vector<float> buf1_;  // momentum (sgd) or exp_avg (adam/lamb)
  std::vector<float> buf2_;  // exp_avg_sq
  std::uint64_t steps_ = 0;
};

}  // namespace apiary::optimizer
