#pragma once
// ParameterRegistry: every parameter and every gradient of a model lives in ONE
// flat fp32 buffer each (same order, same offsets); layers hold views into them.
// This is the form averaging (all-reduce over a flat buffer) and the optimizer
// kernels (flat spans, per-tensor slices for LAMB) work on.
//
// Usage: declare() every parameter, then finalize() once to allocate; after that
// parameter(i)/gradient(i) are views and the flat spans stay valid (and fixed in
// memory) for the registry's lifetime. Errors: std::invalid_argument / std::logic_error.
#include "kernels/optimizer.hpp"
#include "nn/tensor.hpp"

#include <cstddef>
#include <span>
#include <string>
#include <vector>

namespace apiary::nn {

struct ParameterInfo {
  std::string name;
  Shape shape;
  std::size_t offset = 0;  // in elements, into the flat buffers
  std::size_t size = 0;
};

class ParameterRegistry {
 public:
  explicit ParameterRegistry(Device device = Device::cpu) : device_(device) {}
  ParameterRegistry(const ParameterRegistry&) = delete;
  ParameterRegistry& operator=(const ParameterRegistry&) = delete;

  // Returns the parameter's index. Names must be unique. Only before finalize().
  std::size_t declare(std::string name, Shape shape);
  // Allocates both flat buffers, zero-filled.
  void finalize();
  bool finalized() const noexcept { return finalized_; }

  Tensor parameter(std::size_t index);
  Tensor gradient(std::size_t index);
  const std::vector<ParameterInfo>& infos() const noexcept { return infos_; }
  std::size_t find(const std::string& name) const;  // throws if unknown

  // The flat buffers (on device()). Sizes equal total_size().
  std::span<float> flat_parameters();
  std::span<const float> flat_parameters() const;
  std::span<float> flat_gradients();
  std::span<const float> flat_gradients() const;
  std::size_t total_size() const noexcept { return total_; }
  // One slice per parameter tensor (for LAMB's per-tensor trust ratio).
  std::vector<kernels::TensorSlice> slices() const;
  Device device() const noexcept { return device_; }

  void zero_gradients();

 private:
  void require_finalized() const;
  Device device_;
  std::vector<ParameterInfo> infos_;
  std::size_t total_ = 0;
  bool finalized_ = false;
  Tensor parameters_;
  Tensor gradients_;
};

}  // namespace apiary::nn
