#pragma once
// The built-in "ffn" expert: Linear(in → inner) → GELU → Linear(inner → out),
// computed with kernels/ on the CPU (OpenBLAS GEMM) or on CUDA (cuBLAS and the
// kernels/cuda element-wise kernels). Parameters are one flat buffer
// [W1 (in×inner) | b1 | W2 (inner×out) | b2] on the chosen device, W row-major
// as used in y = x·W + b. Weights start uniform in ±1/√fan_in from `seed`
// (drawn on the host, so a CPU and a CUDA expert with the same seed start
// equal); biases at zero. On CUDA, a batch is copied to the device, computed
// there, and its result copied back; scratch buffers are reused between calls.
// Errors: apiary::Error{invalid_argument} for bad sizes or inputs; constructing
// a CUDA expert without a usable device throws std::runtime_error naming the
// driver's reason (kernels::cuda_status()).
#include "experts/expert_module.hpp"
#include "nn/tensor.hpp"

#include <cstdint>
#include <vector>

namespace apiary::experts {

struct FfnConfig {
  std::size_t in_features = 1024;
  std::size_t inner_features = 4096;  // hivemind's ffn uses 4 × hidden
  std::size_t out_features = 1024;
  std::uint64_t seed = 0;

  // in = out = hidden, inner = 4 × hidden.
  static FfnConfig for_hidden(std::size_t hidden, std::uint64_t seed = 0) {
    return {hidden, 4 * hidden, hidden, seed};
  }
};

class FfnExpert final : public ExpertModule {
 public:
  explicit FfnExpert(const FfnConfig& config, kernels::Device device = kernels::Device::cpu);

  ExpertSchema schema() const override;
  kernels::Device device() const override { return device_; }
  std::span<float> parameters() override { return params_.span<float>(); }
  std::span<const float> parameters() const override { return params_.span<float>(); }
  std::span<const float> gradients() const override { return grads_.span<float>(); }

  HostTensor forward(const HostTensor& input) override;
  HostTensor backward(const HostTensor& input, const HostTensor& grad_output) override;

  const FfnConfig& config() const noexcept { return config_; }

 private:
  // Views of the parameter (or gradient) buffer.
  struct Views {
    std::span<float> w1, b1, w2, b2;
  };
  Views split(std::span<float> flat) const;
  // `input` on the device (itself on the CPU; else a copy in x_), after the schema check.
  std::span<const float> stage_input(const HostTensor& input);
  // Hidden pre-activation h = x·W1 + b1 and activation a = gelu(h) (views of h_ and a_).
  struct Hidden {
    std::span<float> h, a;
  };
  Hidden hidden_forward(std::span<const float> x, std::size_t rows);
  // `n` floats on device_, kept in `cached` between calls.
  std::span<float> scratch(nn::Tensor& cached, std::size_t n);

  FfnConfig config_;
  kernels::Device device_;
  nn::Tensor params_, grads_;
  nn::Tensor x_, h_, a_, y_, dy_, da_, dh_, dx_;  // scratch on device_
};

}  // namespace apiary::experts
