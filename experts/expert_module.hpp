#pragma once
// The compute an expert runs: a differentiable function of one batch with flat
// fp32 parameters. Modules are stateless between calls (backward recomputes
// what it needs from the inputs), so a server can answer backward requests for
// inputs it never saw forward. Not thread-safe: ExpertBackend serialises calls.
// Inputs and outputs are host tensors; parameters and gradients live on
// device() (host memory, or CUDA memory for modules computing there).
// Errors: throws apiary::Error (invalid_argument for inputs outside the schema).
#include "experts/tensor.hpp"
#include "kernels/device.hpp"

#include <span>

namespace apiary::experts {

class ExpertModule {
 public:
  virtual ~ExpertModule() = default;

  virtual ExpertSchema schema() const = 0;
  virtual kernels::Device device() const { return kernels::Device::cpu; }
  // On device(); the spans stay valid for the module's lifetime.
  virtual std::span<float> parameters() = 0;
  virtual std::span<const float> parameters() const = 0;
  // Same length as parameters(); written by backward().
  virtual std::span<const float> gradients() const = 0;

  virtual HostTensor forward(const HostTensor& input) = 0;
  // Overwrites gradients() with d loss / d parameters for this batch and returns
  // d loss / d input, given d loss / d output.
  virtual HostTensor backward(const HostTensor& input, const HostTensor& grad_output) = 0;
};

}  // namespace apiary::experts
