#include "experts/ffn_expert.hpp"

#include "core/error.hpp"
#include "kernels/activation.hpp"
#include "kernels/blas.hpp"

#include <cmath>
#include <random>

namespace apiary::experts {

namespace k = apiary::kernels;

FfnExpert::FfnExpert(const FfnConfig& config) : config_(config) {
  if (config.in_features == 0 || config.inner_features == 0 || config.out_features == 0) {
    throw Error(Errc::invalid_argument, "ffn expert: feature sizes must be positive");
  }
  const auto n = config.in_features * config.inner_features + config.inner_features +
                 config.inner_features * config.out_features + config.out_features;
  params_.assign(n, 0.0f);
  grads_.assign(n, 0.0f);
  auto v = split(params_);
  std::mt19937_64 rng(config.seed);
  auto init = [&](std::span<float> w, std::size_t fan_in) {
    const float bound = 1.0f / std::sqrt(static_cast<float>(fan_in));
    std::uniform_real_distribution<float> dist(-bound, bound);
    for (auto& x : w) x = dist(rng);
  };
  init(v.w1, config.in_features);
  init(v.w2, config.inner_features);
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

void FfnExpert::hidden_forward(const HostTensor& input, std::vector<float>& h,
                               std::vector<float>& a) {
  schema().input.check(input, "ffn input");
  const auto rows = input.rows();
  auto p = split(params_);
  h.assign(rows * config_.inner_features, 0.0f);
  a.assign(h.size(), 0.0f);
  if (rows == 0) return;
  k::gemm({rows, config_.inner_features, config_.in_features}, 1.0f, input.values, p.w1, 0.0f, h);
  k::add_bias_rows(h, p.b1, rows, config_.inner_features);
  k::gelu_forward(h, a);
}

HostTensor FfnExpert::forward(const HostTensor& input) {
  std::vector<float> h, a;
  hidden_forward(input, h, a);
  const auto rows = input.rows();
  auto p = split(params_);
  auto out = HostTensor::zeros({rows, config_.out_features});
  if (rows == 0) return out;
  k::gemm({rows, config_.out_features, config_.inner_features}, 1.0f, a, p.w2, 0.0f, out.values);
  k::add_bias_rows(out.values, p.b2, rows, config_.out_features);
  return out;
}

HostTensor FfnExpert::backward(const HostTensor& input, const HostTensor& grad_output) {
  schema().output.check(grad_output, "ffn grad_output");
  if (grad_output.rows() != input.rows()) {
    throw Error(Errc::invalid_argument, "ffn backward: grad_output has " +
                                            std::to_string(grad_output.rows()) +
                                            " rows, input has " + std::to_string(input.rows()));
  }
  std::vector<float> h, a;
  hidden_forward(input, h, a);
  const auto rows = input.rows(), in = config_.in_features, inner = config_.inner_features,
             out = config_.out_features;
  auto p = split(params_);
  auto g = split(grads_);
  auto grad_input = HostTensor::zeros({rows, in});
  if (rows == 0) {
    std::fill(grads_.begin(), grads_.end(), 0.0f);
    return grad_input;
  }
  // dW2 = aᵀ·dy, db2 = Σ dy
  k::gemm({inner, out, rows, k::Transpose::yes, k::Transpose::no}, 1.0f, a, grad_output.values,
          0.0f, g.w2);
  k::sum_rows(grad_output.values, g.b2, rows, out);
  // da = dy·W2ᵀ, dh = gelu'(h)·da
  std::vector<float> da(rows * inner);
  k::gemm({rows, inner, out, k::Transpose::no, k::Transpose::yes}, 1.0f, grad_output.values, p.w2,
          0.0f, da);
  std::vector<float> dh(rows * inner);
  k::gelu_backward(h, da, dh);
  // dW1 = xᵀ·dh, db1 = Σ dh, dx = dh·W1ᵀ
  k::gemm({in, inner, rows, k::Transpose::yes, k::Transpose::no}, 1.0f, input.values, dh, 0.0f,
          g.w1);
  k::sum_rows(dh, g.b1, rows, inner);
  k::gemm({rows, in, inner, k::Transpose::no, k::Transpose::yes}, 1.0f, dh, p.w1, 0.0f,
          grad_input.values);
  return grad_input;
}

}  // namespace apiary::experts
