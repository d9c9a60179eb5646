#pragma once
// A multi-layer perceptron: Linear → activation → … → Linear (logits), with all
// parameters in one ParameterRegistry. Seeded: the same config gives the same
// initial weights on every peer (He init for hidden layers, Xavier for the last).
// Errors: std::invalid_argument for bad configs and input shapes.
#include "nn/layers.hpp"
#include "nn/loss.hpp"
#include "nn/parameters.hpp"

#include <cstdint>
#include <memory>
#include <vector>

namespace apiary::nn {

enum class Activation { relu, gelu };

struct MlpConfig {
  std::vector<std::size_t> layer_sizes = {784, 256, 128, 10};  // input, hidden…, classes
  Activation activation = Activation::relu;
  std::uint64_t seed = 0;
  Device device = Device::cpu;
};

// Number of rows of logits [batch × classes] whose arg-max equals the label.
std::size_t count_correct(const Tensor& logits, std::span<const std::int32_t> labels);

class Mlp {
 public:
  explicit Mlp(MlpConfig config);

  // input: f32 [batch × layer_sizes.front()] on device(). Returns logits.
  Tensor forward(const Tensor& input);
  // Back-propagates d loss / d logits; gradients are ADDED to the registry.
  void backward(const Tensor& grad_logits);
  // zero_gradients + forward + loss + backward. labels: i32 [batch] on device().
  float forward_backward(const Tensor& input, const Tensor& labels);
  // Number of rows whose arg-max logit equals the label (labels on the host).
  std::size_t count_correct(const Tensor& input, std::span<const std::int32_t> labels);

  ParameterRegistry& parameters() noexcept { return registry_; }
  const ParameterRegistry& parameters() const noexcept { return registry_; }
  const MlpConfig& config() const noexcept { return config_; }
  Device device() const noexcept { return config_.device; }
  std::size_t input_size() const noexcept { return config_.layer_sizes.front(); }
  std::size_t classes() const noexcept { return config_.layer_sizes.back(); }

 private:
  MlpConfig config_;
  ParameterRegistry registry_;
  std::vector<std::unique_ptr<Linear>> linears_;
  std::vector<std::unique_ptr<Layer>> layers_;  // forward order, activations interleaved
  SoftmaxCrossEntropy loss_;
};

}  // namespace apiary::nn
