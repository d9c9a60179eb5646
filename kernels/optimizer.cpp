#include "kernels/optimizer.hpp"

#include "kernels/dispatch.hpp"
#include "kernels/parallel.hpp"
#include "kernels/reduce.hpp"

#include <cmath>
#include <string>

namespace apiary::kernels {

namespace {
constexpr std::size_t kParallelMin = std::size_t{1} << 18;

void check_step(std::uint64_t step) {
  if (step == 0) throw std::invalid_argument("optimizer step numbers start at 1");
}

struct BiasCorrection {
  float c1, c2;  // 1 − β1ᵗ, 1 − β2ᵗ
};
BiasCorrection bias_correction(float beta1, float beta2, std::uint64_t step) {
  double t = static_cast<double>(step);
  return {static_cast<float>(1.0 - std::pow(static_cast<double>(beta1), t)),
          static_cast<float>(1.0 - std::pow(static_cast<double>(beta2), t))};
}
}  // namespace

void sgd_step(std::span<float> params, std::span<const float> grads, std::span<float> momentum_buf,
              const SgdConfig& c, Device device) {
  detail::check_same_size(params.size(), grads.size(), "sgd_step grads");
  if (c.momentum != 0.0f) {
    detail::check_same_size(params.size(), momentum_buf.size(), "sgd_step momentum");
  }
  if (device == Device::cuda) {
    require_device(device);
    APIARY_CUDA_CALL(cuda::sgd_step(params.data(), grads.data(),
                                    c.momentum != 0.0f ? momentum_buf.data() : nullptr,
                                    params.size(), c));
    return;
  }
  detail::parallel_for(params.size(), kParallelMin, 16, [&](std::size_t begin, std::size_t end) {
    float* __restrict p = params.data();
    const float* __restrict g = grads.data();
    if (c.momentum == 0.0f) {
      for (std::size_t i = begin; i < end; ++i) p[i] -= c.lr * (g[i] + c.weight_decay * p[i]);
      return;
    }
    float* __restrict buf = momentum_buf.data();
    for (std::size_t i = begin; i < end; ++i) {
      float gi = g[i] + c.weight_decay * p[i];
      float b = c.momentum * buf[i] + gi;
      buf[i] = b;
      float d = c.nesterov ? gi + c.momentum * b : b;
      p[i] -= c.lr * d;
    }
  });
}

void adam_step(std::span<float> params, std::span<const float> grads, std::span<float> exp_avg,
               std::span<float> exp_avg_sq, std::uint64_t step, const AdamConfig& c,
               Device device) {
  detail::check_same_size(params.size(), grads.size(), "adam_step grads");
  detail::check_same_size(params.size(), exp_avg.size(), "adam_step exp_avg");
  detail::check_same_size(params.size(), exp_avg_sq.size(), "adam_step exp_avg_sq");
  check_step(step);
  // Plain variables, not a structured binding: clang before 16 cannot capture
  // bindings in the lambdas below (the fuzz build compiles this with clang 14).
  const BiasCorrection correction = bias_correction(c.beta1, c.beta2, step);
  const float c1 = correction.c1, c2 = correction.c2;
  if (device == Device::cuda) {
    require_device(device);
    APIARY_CUDA_CALL(cuda::adam_step(params.data(), grads.data(), exp_avg.data(), exp_avg_sq.data(),
                                     params.size(), c, c1, c2));
    return;
  }
  detail::parallel_for(params.size(), kParallelMin, 16, [&](std::size_t begin, std::size_t end) {
    float* __restrict p = params.data();
    const float* __restrict g = grads.data();
    float* __restrict m = exp_avg.data();
    float* __restrict v = exp_avg_sq.data();
    const float decay = c.decoupled_weight_decay ? 1.0f - c.lr * c.weight_decay : 1.0f;
    const float l2 = c.decoupled_weight_decay ? 0.0f : c.weight_decay;
    for (std::size_t i = begin; i < end; ++i) {
      float gi = g[i] + l2 * p[i];
      float mi = c.beta1 * m[i] + (1.0f - c.beta1) * gi;
      float vi = c.beta2 * v[i] + (1.0f - c.beta2) * gi * gi;
      m[i] = mi;
      v[i] = vi;
      float update = (mi / c1) / (std::sqrt(vi / c2) + c.eps);
      p[i] = p[i] * decay - c.lr * update;
    }
  });
}

void lamb_step(std::span<float> params, std::span<const float> grads, std::span<float> exp_avg,
               std::span<float> exp_avg_sq, std::span<const TensorSlice> slices, std::uint64_t step,
               const LambConfig& c, Device device) {
  detail::check_same_size(params.size(), grads.size(), "lamb_step grads");
  detail::check_same_size(params.size(), exp_avg.size(), "lamb_step exp_avg");
  detail::check_same_size(params.size(), exp_avg_sq.size(), "lamb_step exp_avg_sq");
  check_step(step);
  for (const auto& s : slices) {
    if (s.offset > params.size() || s.size > params.size() - s.offset) {
      throw std::invalid_argument("lamb_step: slice [" + std::to_string(s.offset) + ", +" +
                                  std::to_string(s.size) + ") exceeds the buffer of " +
                                  std::to_string(params.size()));
    }
  }
  // Plain variables, not a structured binding: clang before 16 cannot capture
  // bindings in the lambdas below (the fuzz build compiles this with clang 14).
  const BiasCorrection correction = bias_correction(c.beta1, c.beta2, step);
  const float c1 = correction.c1, c2 = correction.c2;
  if (device == Device::cuda) {
    require_device(device);
    APIARY_CUDA_CALL(cuda::lamb_step(params.data(), grads.data(), exp_avg.data(), exp_avg_sq.data(),
                                     slices, c, c1, c2));
    return;
  }
  for (const auto& s : slices) {
    if (s.size == 0) continue;
    float* __restrict p = params.data() + s.offset;
    const float* __restrict g = grads.data() + s.offset;
    float* __restrict m = exp_avg.data() + s.offset;
    float* __restrict v = exp_avg_sq.data() + s.offset;
    // Pass 1: moments. The update u is not stored (grads are const); it is
    // recomputed from the stored moments for the norm and for the step.
    for (std::size_t i = 0; i < s.size; ++i) {
      m[i] = c.beta1 * m[i] + (1.0f - c.beta1) * g[i];
      v[i] = c.beta2 * v[i] + (1.0f - c.beta2) * g[i] * g[i];
    }
    auto update = [&](std::size_t i) {
      return (m[i] / c1) / (std::sqrt(v[i] / c2) + c.eps) + c.weight_decay * p[i];
    };
    // Norms in double over fixed order: deterministic and accurate.
    double p_norm_sq = 0.0, u_norm_sq = 0.0;
    for (std::size_t i = 0; i < s.size; ++i) {
      double pi = p[i], ui = update(i);
      p_norm_sq += pi * pi;
      u_norm_sq += ui * ui;
    }
    float trust = 1.0f;
    if (p_norm_sq > 0.0 && u_norm_sq > 0.0) {
      trust = static_cast<float>(std::sqrt(p_norm_sq) / std::sqrt(u_norm_sq));
    }
    const float step_size = c.lr * trust;
    for (std::size_t i = 0; i < s.size; ++i) p[i] -= step_size * update(i);
  }
}

float global_norm(std::span<const float> grads, Device device) {
  return std::sqrt(sum_squares(grads, device));
}

float clip_by_global_norm(std::span<float> grads, float max_norm, Device device) {
  float norm = global_norm(grads, device);
  if (norm > max_norm && norm > 0.0f) scale(grads, max_norm / norm, device);
  return norm;
}

}  // namespace apiary::kernels
