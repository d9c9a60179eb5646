#pragma once
// The run configuration's optimizer (OptimizerConfig) as an nn::LocalOptimizer
// — the one local optimizer, over flat host buffers — and its per-epoch
// learning-rate schedule: linear warmup, then multiplicative decay. The
// collaborative optimizer steps with it at each epoch boundary; its statistics
// (state_buffers()) are averaged with peers, checkpointed and downloaded by
// late joiners. Errors: step_at_epoch throws apiary::Error{invalid_argument}
// on size mismatches.
#include "kernels/optimizer.hpp"
#include "nn/local_optimizer.hpp"
#include "optimizer/run_config.hpp"

#include <cstdint>
#include <span>
#include <vector>

namespace apiary::optimizer {

using nn::LocalOptimizer;

// The kernel settings of `config` (AdamW: Adam with decoupled weight decay).
nn::LocalOptimizerConfig kernel_config(const OptimizerConfig& config);

// `slices` name the tensors inside the flat buffer (LAMB's trust ratio is per tensor).
LocalOptimizer make_local_optimizer(const OptimizerConfig& config, std::size_t num_params,
                                    std::vector<kernels::TensorSlice> slices = {});

double learning_rate(const OptimizerConfig& config, std::uint64_t epoch) noexcept;

// One step of `optimizer` with `grads` (already averaged) at `epoch`'s learning rate.
void step_at_epoch(LocalOptimizer& optimizer, const OptimizerConfig& config,
                   std::span<float> params, std::span<const float> grads, std::uint64_t epoch);

}  // namespace apiary::optimizer
