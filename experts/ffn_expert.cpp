#include "experts/ffn_expert.hpp"

#include "core/error.hpp"
#include "kernels/activation.hpp"
#include "kernels/blas.hpp"
#include "kernels/memory.hpp"

#include <cmath>
#include <random>

namespace apiary::experts {

namespace k = apiary::kernels;
using k::Device;

namespace {

// Copies a device result into host memory (nothing to do when it is there already).
void to_host(std::span<const float> result, std::span<float> host, Device device) {
  if (device == Device::cpu) return;
  k::copy_bytes(host.data(), Device::cpu, result.data(), device, host.size_bytes());
}

}  // namespace

FfnExpert::FfnExpert(const FfnConfig& config, Device device) : config_(config), device_(device) {
  if (config.in_features == 0 || config.inner_features == 0 || config.out_features == 0) {
    throw Error(Errc::invalid_argument, "ffn expert: feature sizes must be positive");
  }
  k::require_device(device);
  const auto n = config.in_features * config.inner_features + config.inner_features +
                 config.inner_features * config.out_features + config.out_features;
  std::vector<float> initial(n, 0.0f);
  auto v = split(initial);
  std::mt19937_64 rng(config.seed);
  auto init = [&](std::span<float> w, std::size_t fan_in) {
    const float bound = 1.0f / std::sqrt(static_cast<float>(fan_in));
    std::uniform_real_distribution<float> dist(-bound, bound);
    for (auto& x : w) x = dist(rng);
  };
  init(v.w1, config.in_features);
  init(v.w2, config.inner_features);
  params_ = nn::Tensor::from_vector(initial, {n}, device);
  grads_ = nn::Tensor::zeros({n}, nn::DType::f32, device);
}

FfnExpert::Views FfnExpert::split(std::span<float> flat) const {
  const auto in = config_.in_features, inner = config_.inner_features, out = config_.out_features;
  Views v;
  v.w1 = flat.subspan(0, in * inner);
  v.b1 = flat.subspan(in * inner, inner);
  v.w2 = flat.subspan(in * inner + inner, inner * out);
  v.b2 = flat.subspan(in * inner + inner + inner * out, out);
  return v;
}

ExpertSchema FfnExpert::schema() const {
  return {TensorSchema{{config_.in_features}}, TensorSchema{{config_.out_features}}};
}

std::span<float> FfnExpert::scratch(nn::Tensor& cached, std::size_t n) {
  // Grown, never shrunk: batches vary in size and device allocations are slow.
  if (!cached.owns_storage() || cached.numel() < n) {
    cached = nn::Tensor::empty({n}, nn::DType::f32, device_);
  }
  return cached.span<float>().first(n);
}

std::span<const float> FfnExpert::stage_input(const HostTensor& input) {
  schema().input.check(input, "ffn input");
  if (device_ == Device::cpu) return input.values;
  auto x = scratch(x_, input.values.size());
  k::copy_bytes(x.data(), device_, input.values.data(), Device::cpu, x.size_bytes());
  return x;
}

FfnExpert::Hidden FfnExpert::hidden_forward(std::span<const float> x, std::size_t rows) {
  const auto inner = config_.inner_features;
  auto p = split(params_.span<float>());
  Hidden out{scratch(h_, rows * inner), scratch(a_, rows * inner)};
  k::gemm({rows, inner, config_.in_features}, 1.0f, x, p.w1, 0.0f, out.h, device_);
  k::add_bias_rows(out.h, p.b1, rows, inner, device_);
  k::gelu_forward(out.h, out.a, device_);
  return out;
}

HostTensor FfnExpert::forward(const HostTensor& input) {
  auto x = stage_input(input);
  const auto rows = input.rows(), out_features = config_.out_features;
  auto out = HostTensor::zeros({rows, out_features});
  if (rows == 0) return out;
  const auto hidden = hidden_forward(x, rows);
  auto p = split(params_.span<float>());
  // On the CPU the result is written straight into the reply.
  auto y = device_ == Device::cpu ? std::span<float>(out.values) : scratch(y_, out.values.size());
  k::gemm({rows, out_features, config_.inner_features}, 1.0f, hidden.a, p.w2, 0.0f, y, device_);
  k::add_bias_rows(y, p.b2, rows, out_features, device_);
  to_host(y, out.values, device_);
  return out;
}

HostTensor FfnExpert::backward(const HostTensor& input, const HostTensor& grad_output) {
  schema().output.check(grad_output, "ffn grad_output");
  if (grad_output.rows() != input.rows()) {
    throw Error(Errc::invalid_argument, "ffn backward: grad_output has " +
                                            std::to_string(grad_output.rows()) +
                                            " rows, input has " + std::to_string(input.rows()));
  }
  auto x = stage_input(input);
  const auto rows = input.rows(), in = config_.in_features, inner = config_.inner_features,
             out = config_.out_features;
  auto grad_input = HostTensor::zeros({rows, in});
  if (rows == 0) {
    grads_.zero();
    return grad_input;
  }
  const auto [h, a] = hidden_forward(x, rows);
  auto p = split(params_.span<float>());
  auto g = split(grads_.span<float>());
  std::span<const float> dy = grad_output.values;
  if (device_ != Device::cpu) {
    auto staged = scratch(dy_, dy.size());
    k::copy_bytes(staged.data(), device_, dy.data(), Device::cpu, dy.size_bytes());
    dy = staged;
  }
  // dW2 = aᵀ·dy, db2 = Σ dy
  k::gemm({inner, out, rows, k::Transpose::yes, k::Transpose::no}, 1.0f, a, dy, 0.0f, g.w2,
          device_);
  k::sum_rows(dy, g.b2, rows, out, device_);
  // da = dy·W2ᵀ, dh = gelu'(h)·da
  auto da = scratch(da_, rows * inner);
  k::gemm({rows, inner, out, k::Transpose::no, k::Transpose::yes}, 1.0f, dy, p.w2, 0.0f, da,
          device_);
  auto dh = scratch(dh_, rows * inner);
  k::gelu_backward(h, da, dh, device_);
  // dW1 = xᵀ·dh, db1 = Σ dh, dx = dh·W1ᵀ
  k::gemm({in, inner, rows, k::Transpose::yes, k::Transpose::no}, 1.0f, x, dh, 0.0f, g.w1, device_);
  k::sum_rows(dh, g.b1, rows, inner, device_);
  auto dx = device_ == Device::cpu ? std::span<float>(grad_input.values)
                                   : scratch(dx_, grad_input.values.size());
  k::gemm({rows, in, inner, k::Transpose::no, k::Transpose::yes}, 1.0f, dh, p.w1, 0.0f, dx,
          device_);
  to_host(dx, grad_input.values, device_);
  return grad_input;
}

}  // namespace apiary::experts
