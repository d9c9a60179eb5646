#include "nn/layers.hpp"

#include "kernels/activation.hpp"
#include "kernels/blas.hpp"
#include "kernels/reduce.hpp"

#include <cmath>
#include <stdexcept>
#include <vector>

namespace apiary::nn {

Tensor reuse_or_allocate(Tensor& cached, const Shape& shape, Device device) {
  if (!cached.owns_storage() || cached.shape() != shape || cached.device() != device) {
    cached = Tensor::empty(shape, DType::f32, device);
  }
  return cached;
}

namespace {
void check_matrix(const Tensor& t, std::size_t cols, Device device, const char* what) {
  if (t.shape().size() != 2 || t.dim(1) != cols || t.dtype() != DType::f32) {
    throw std::invalid_argument(std::string(what) + ": expected f32 [batch, " +
                                std::to_string(cols) + "], got " + to_string(t.dtype()) +
                                shape_string(t.shape()));
  }
  if (t.device() != device) throw std::invalid_argument(std::string(what) + ": wrong device");
}

void check_same_shape(const Tensor& a, const Tensor& b, const char* what) {
  if (a.shape() != b.shape() || a.device() != b.device()) {
    throw std::invalid_argument(std::string(what) + ": gradient " + shape_string(b.shape()) +
                                " does not match forward " + shape_string(a.shape()));
  }
}

void require_forward(const Tensor& input, const char* what) {
  if (!input.defined() || input.shape().empty()) {
    throw std::logic_error(std::string(what) + ": backward() before forward()");
  }
}
}  // namespace

Linear::Linear(ParameterRegistry& registry, const std::string& name, std::size_t in_features,
               std::size_t out_features)
    : registry_(&registry),
      weight_index_(registry.declare(name + ".weight", {out_features, in_features})),
      bias_index_(registry.declare(name + ".bias", {out_features})),
      in_(in_features),
      out_(out_features) {}

void Linear::initialize(Init init, std::mt19937_64& rng) {
  std::vector<float> weights(in_ * out_);
  if (init == Init::he) {
    std::normal_distribution<float> dist(0.0f, std::sqrt(2.0f / static_cast<float>(in_)));
    for (auto& w : weights) w = dist(rng);
  } else {
    float limit = std::sqrt(6.0f / static_cast<float>(in_ + out_));
    std::uniform_real_distribution<float> dist(-limit, limit);
    for (auto& w : weights) w = dist(rng);
  }
  Tensor weight = registry_->parameter(weight_index_);
  weight.copy_from(Tensor::from_vector(weights, weight.shape()));
  registry_->parameter(bias_index_).zero();
}

Tensor Linear::forward(const Tensor& input) {
  const Device device = registry_->device();
  check_matrix(input, in_, device, "Linear::forward");
  const std::size_t batch = input.dim(0);
  input_ = input;
  Tensor output = reuse_or_allocate(output_, {batch, out_}, device);
  Tensor weight = registry_->parameter(weight_index_);
  Tensor bias = registry_->parameter(bias_index_);
  kernels::gemm({batch, out_, in_, kernels::Transpose::no, kernels::Transpose::yes}, 1.0f,
                input.span<const float>(), weight.span<const float>(), 0.0f, output.span<float>(),
                device);
  kernels::add_bias_rows(output.span<float>(), bias.span<const float>(), batch, out_, device);
  return output;
}

Tensor Linear::backward(const Tensor& grad_output) {
  require_forward(input_, "Linear");
  const Device device = registry_->device();
  const std::size_t batch = input_.dim(0);
  check_matrix(grad_output, out_, device, "Linear::backward");
  if (grad_output.dim(0) != batch) throw std::invalid_argument("Linear::backward: batch size");
  Tensor weight = registry_->parameter(weight_index_);
  Tensor weight_grad = registry_->gradient(weight_index_);
  Tensor bias_grad = registry_->gradient(bias_index_);
  auto dy = grad_output.span<const float>();
  // dW [out × in] += dyᵀ [out × batch] · x [batch × in]
  kernels::gemm({out_, in_, batch, kernels::Transpose::yes, kernels::Transpose::no}, 1.0f, dy,
                input_.span<const float>(), 1.0f, weight_grad.span<float>(), device);
  // db += Σ_rows dy
  Tensor db = reuse_or_allocate(bias_grad_scratch_, {out_}, device);
  kernels::sum_rows(dy, db.span<float>(), batch, out_, device);
  kernels::weighted_accumulate(bias_grad.span<float>(), db.span<const float>(), 1.0f, device);
  // dx [batch × in] = dy [batch × out] · W [out × in]
  Tensor grad_input = reuse_or_allocate(grad_input_, {batch, in_}, device);
  kernels::gemm({batch, in_, out_, kernels::Transpose::no, kernels::Transpose::no}, 1.0f, dy,
                weight.span<const float>(), 0.0f, grad_input.span<float>(), device);
  return grad_input;
}

Tensor ReLU::forward(const Tensor& input) {
  input_ = input;
  Tensor output = reuse_or_allocate(output_, input.shape(), input.device());
  kernels::relu_forward(input.span<const float>(), output.span<float>(), input.device());
  return output;
}

Tensor ReLU::backward(const Tensor& grad_output) {
  require_forward(input_, "ReLU");
  check_same_shape(input_, grad_output, "ReLU::backward");
  Tensor grad_input = reuse_or_allocate(grad_input_, input_.shape(), input_.device());
  kernels::relu_backward(input_.span<const float>(), grad_output.span<const float>(),
                         grad_input.span<float>(), input_.device());
  return grad_input;
}

Tensor GELU::forward(const Tensor& input) {
  input_ = input;
  Tensor output = reuse_or_allocate(output_, input.shape(), input.device());
  kernels::gelu_forward(input.span<const float>(), output.span<float>(), input.device());
  return output;
}

Tensor GELU::backward(const Tensor& grad_output) {
  require_forward(input_, "GELU");
  check_same_shape(input_, grad_output, "GELU::backward");
  Tensor grad_input = reuse_or_allocate(grad_input_, input_.shape(), input_.device());
  kernels::gelu_backward(input_.span<const float>(), grad_output.span<const float>(),
                         grad_input.span<float>(), input_.device());
  return grad_input;
}

}  // namespace apiary::nn
