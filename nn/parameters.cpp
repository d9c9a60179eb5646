#include "nn/parameters.hpp"

#include <stdexcept>

namespace apiary::nn {

std::size_t ParameterRegistry::declare(std::string name, Shape shape) {
  if (finalized_) throw std::logic_error("ParameterRegistry::declare after finalize()");
  for (const auto& info : infos_) {
    if (info.name == name) throw std::invalid_argument("duplicate parameter name: " + name);
  }
  std::size_t size = element_count(shape);
  infos_.push_back({std::move(name), std::move(shape), total_, size});
  total_ += size;
  return infos_.size() - 1;
}

void ParameterRegistry::finalize() {
  if (finalized_) throw std::logic_error("ParameterRegistry::finalize called twice");
  parameters_ = Tensor::zeros({total_}, DType::f32, device_);
  gradients_ = Tensor::zeros({total_}, DType::f32, device_);
  finalized_ = true;
}

void ParameterRegistry::require_finalized() const {
  if (!finalized_) throw std::logic_error("ParameterRegistry used before finalize()");
}

namespace {
Tensor slice_view(Tensor& flat, const ParameterInfo& info, Device device) {
  float* base = flat.span<float>().data();
  return Tensor::view(base + info.offset, info.shape, DType::f32, device);
}
}  // namespace

Tensor ParameterRegistry::parameter(std::size_t index) {
  require_finalized();
  return slice_view(parameters_, infos_.at(index), device_);
}

Tensor ParameterRegistry::gradient(std::size_t index) {
  require_finalized();
  return slice_view(gradients_, infos_.at(index), device_);
}

std::size_t ParameterRegistry::find(const std::string& name) const {
  for (std::size_t i = 0; i < infos_.size(); ++i) {
    if (infos_[i].name == name) return i;
  }
  throw std::invalid_argument("unknown parameter: " + name);
}

std::span<float> ParameterRegistry::flat_parameters() {
  require_finalized();
  return parameters_.span<float>();
}
std::span<const float> ParameterRegistry::flat_parameters() const {
  require_finalized();
  return parameters_.span<const float>();
}
std::span<float> ParameterRegistry::flat_gradients() {
  require_finalized();
  return gradients_.span<float>();
}
std::span<const float> ParameterRegistry::flat_gradients() const {
  require_finalized();
  return gradients_.span<const float>();
}

std::vector<kernels::TensorSlice> ParameterRegistry::slices() const {
  std::vector<kernels::TensorSlice> out;
  out.reserve(infos_.size());
  for (const auto& info : infos_) out.push_back({info.offset, info.size});
  return out;
}

void ParameterRegistry::zero_gradients() {
  require_finalized();
  gradients_.zero();
}

}  // namespace apiary::nn
