#pragma once
// The built-in "ffn" expert: Linear(in → inner) → GELU → Linear(inner → out),
// computed on the CPU with kernels/ (OpenBLAS GEMM). Parameters are one flat
// buffer [W1 (in×inner) | b1 | W2 (inner×out) | b2], W row-major as used in
// y = x·W + b. Weights start uniform in ±1/√fan_in from `seed`; biases at zero.
#include "experts/expert_module.hpp"

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
  explicit FfnExpert(const FfnConfig& config);

  ExpertSchema schema() const override;
  std::span<float> parameters() override { return params_; }
  std::span<const float> parameters() const override { return params_; }
  std::span<const float> gradients() const override { return grads_; }

  HostTensor forward(const HostTensor& input) override;
  HostTensor backward(const HostTensor& input, const HostTensor& grad_output) override;

  const FfnConfig& config() const noexcept { return config_; }

 private:
  // Views of the parameter (or gradient) buffer.
  struct Views {
    std::span<float> w1, b1, w2, b2;
  };
  Views split(std::span<float> flat) const;
  // hidden pre-activation h = x·W1 + b1 and activation a = gelu(h).
  void hidden_forward(const HostTensor& input, std::vector<float>& h, std::vector<float>& a);

  FfnConfig config_;
  std::vector<float> params_;
  std::vector<float> grads_;
};

}  // namespace apiary::experts
