#pragma once
// Layers over batched 2-D f32 tensors [batch × features], compute through kernels/
// on the tensors' device. forward() remembers what backward() needs;
// backward() ADDS parameter gradients into the registry (call
// ParameterRegistry::zero_gradients() between steps) and returns the input gradient.
// Output tensors are reused between calls of the same shape: a result stays
// valid until the layer's next forward/backward.
// Errors: std::invalid_argument for shape/device mismatches, std::logic_error
// for backward() without forward().
#include "nn/parameters.hpp"
#include "nn/tensor.hpp"

#include <cstdint>
#include <random>
#include <string>

namespace apiary::nn {

class Layer {
 public:
  virtual ~Layer() = default;
  virtual Tensor forward(const Tensor& input) = 0;
  virtual Tensor backward(const Tensor& grad_output) = 0;
};

enum class Init {
  he,      // N(0, 2/fan_in): layers followed by ReLU/GELU
  xavier,  // U(±√(6/(fan_in+fan_out))): the output layer
};

// y = x·Wᵀ + b with W [out × in] (PyTorch layout), b [out].
class Linear final : public Layer {
 public:
  Linear(ParameterRegistry& registry, const std::string& name, std::size_t in_features,
         std::size_t out_features);
  // After registry.finalize(): weights from `init`, bias zero. Same rng → same weights.
  void initialize(Init init, std::mt19937_64& rng);
  Tensor forward(const Tensor& input) override;
  Tensor backward(const Tensor& grad_output) override;
  std::size_t in_features() const noexcept { return in_; }
  std::size_t out_features() const noexcept { return out_; }

 private:
  ParameterRegistry* registry_;  // not owned; outlives the layer (the model owns both)
  std::size_t weight_index_, bias_index_;
  std::size_t in_, out_;
  Tensor input_;
  Tensor output_, grad_input_, bias_grad_scratch_;
};

class ReLU final : public Layer {
 public:
  Tensor forward(const Tensor& input) override;
  Tensor backward(const Tensor& grad_output) override;

 private:
  Tensor input_, output_, grad_input_;
};

// GELU, tanh approximation (see kernels/activation.hpp).
class GELU final : public Layer {
 public:
  Tensor forward(const Tensor& input) override;
  Tensor backward(const Tensor& grad_output) override;

 private:
  Tensor input_, output_, grad_input_;
};

// Returns `cached` when it already has this shape/device, else a new tensor.
Tensor reuse_or_allocate(Tensor& cached, const Shape& shape, Device device);

}  // namespace apiary::nn
