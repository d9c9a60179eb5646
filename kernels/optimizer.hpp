#pragma once
// Optimizer steps over flat fp32 buffers (params, grads and state all the same
// length, all on `device`). Formulas (t = step number, starting at 1):
//
// SGD:   g = grad + wd·p;  buf = μ·buf + g;  d = nesterov ? g + μ·buf : buf;  p -= lr·d
//        (buf starts at zero, so the first step uses buf = g, like PyTorch)
// Adam:  g = grad (+ wd·p unless decoupled);  m = β1·m + (1−β1)·g;  v = β2·v + (1−β2)·g²
//        m̂ = m/(1−β1ᵗ);  v̂ = v/(1−β2ᵗ);  p -= lr·m̂/(√v̂ + ε)
// AdamW: as Adam with decoupled weight decay: p -= lr·wd·p (before the Adam update)
// LAMB:  per tensor (slice): u = m̂/(√v̂ + ε) + wd·p;  r = ‖p‖/‖u‖ (1 when either is 0);
//        p -= lr·r·u   (m, v as Adam, with bias correction)
//
// global_norm() is the deterministic √Σg² (see reduce.hpp); clip_by_global_norm()
// scales grads by max_norm/norm when norm > max_norm and returns the norm before.
// Errors: std::invalid_argument for size mismatches, t == 0, slices out of range.
#include "kernels/device.hpp"

#include <cstddef>
#include <cstdint>
#include <span>

namespace apiary::kernels {

struct SgdConfig {
  float lr = 0.01f;
  float momentum = 0.0f;
  float weight_decay = 0.0f;
  bool nesterov = false;
};

struct AdamConfig {
  float lr = 1e-3f;
  float beta1 = 0.9f;
  float beta2 = 0.999f;
  float eps = 1e-8f;
  float weight_decay = 0.0f;
  bool decoupled_weight_decay = false;  // true: AdamW
};

struct LambConfig {
  float lr = 1e-3f;
  float beta1 = 0.9f;
  float beta2 = 0.999f;
  float eps = 1e-6f;
  float weight_decay = 0.0f;
};

// One parameter tensor inside the flat buffer: elements [offset, offset + size).
struct TensorSlice {
  std::size_t offset = 0;
  std::size_t size = 0;
};

void sgd_step(std::span<float> params, std::span<const float> grads, std::span<float> momentum_buf,
              const SgdConfig& config, Device device = Device::cpu);
void adam_step(std::span<float> params, std::span<const float> grads, std::span<float> exp_avg,
               std::span<float> exp_avg_sq, std::uint64_t step, const AdamConfig& config,
               Device device = Device::cpu);
// `slices` partition (part of) the buffer into tensors; the trust ratio is per slice.
// Elements not covered by any slice are left unchanged.
void lamb_step(std::span<float> params, std::span<const float> grads, std::span<float> exp_avg,
               std::span<float> exp_avg_sq, std::span<const TensorSlice> slices, std::uint64_t step,
               const LambConfig& config, Device device = Device::cpu);

float global_norm(std::span<const float> grads, Device device = Device::cpu);
// Returns the norm before clipping.
float clip_by_global_norm(std::span<float> grads, float max_norm, Device device = Device::cpu);

}  // namespace apiary::kernels
