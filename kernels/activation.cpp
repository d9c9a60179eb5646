#include "kernels/activation.hpp"

#include "kernels/dispatch.hpp"
#include "kernels/parallel.hpp"

#include <algorithm>
#include <cmath>
#include <string>

namespace apiary::kernels {

namespace {
constexpr std::size_t kParallelMin = std::size_t{1} << 18;
constexpr float kSqrt2OverPi = 0.7978845608028654f;
constexpr float kGeluCubic = 0.044715f;
}  // namespace

void relu_forward(std::span<const float> x, std::span<float> y, Device device) {
  detail::check_same_size(x.size(), y.size(), "relu_forward");
  if (device == Device::cuda) {
    require_device(device);
    APIARY_CUDA_CALL(cuda::relu_forward(x.data(), y.data(), x.size()));
    return;
  }
  detail::parallel_for(x.size(), kParallelMin, 16, [&](std::size_t begin, std::size_t end) {
    for (std::size_t i = begin; i < end; ++i) y[i] = x[i] > 0.0f ? x[i] : 0.0f;
  });
}

void relu_backward(std::span<const float> x, std::span<const float> dy, std::span<float> dx,
                   Device device) {
  detail::check_same_size(x.size(), dy.size(), "relu_backward");
  detail::check_same_size(x.size(), dx.size(), "relu_backward");
  if (device == Device::cuda) {
    require_device(device);
    APIARY_CUDA_CALL(cuda::relu_backward(x.data(), dy.data(), dx.data(), x.size()));
    return;
  }
  detail::parallel_for(x.size(), kParallelMin, 16, [&](std::size_t begin, std::size_t end) {
    for (std::size_t i = begin; i < end; ++i) dx[i] = x[i] > 0.0f ? dy[i] : 0.0f;
  });
}

void gelu_forward(std::span<const float> x, std::span<float> y, Device device) {
  detail::check_same_size(x.size(), y.size(), "gelu_forward");
  if (device == Device::cuda) {
    require_device(device);
    APIARY_CUDA_CALL(cuda::gelu_forward(x.data(), y.data(), x.size()));
    return;
  }
  detail::parallel_for(x.size(), kParallelMin, 16, [&](std::size_t begin, std::size_t end) {
    for (std::size_t i = begin; i < end; ++i) {
      float v = x[i];
      float inner = kSqrt2OverPi * (v + kGeluCubic * v * v * v);
      y[i] = 0.5f * v * (1.0f + std::tanh(inner));
    }
  });
}

void gelu_backward(std::span<const float> x, std::span<const float> dy, std::span<float> dx,
                   Device device) {
  detail::check_same_size(x.size(), dy.size(), "gelu_backward");
  detail::check_same_size(x.size(), dx.size(), "gelu_backward");
  if (device == Device::cuda) {
    require_device(device);
    APIARY_CUDA_CALL(cuda::gelu_backward(x.data(), dy.data(), dx.data(), x.size()));
    return;
  }
  detail::parallel_for(x.size(), kParallelMin, 16, [&](std::size_t begin, std::size_t end) {
    for (std::size_t i = begin; i < end; ++i) {
      float v = x[i];
      float inner = kSqrt2OverPi * (v + kGeluCubic * v * v * v);
      float t = std::tanh(inner);
      float dinner = kSqrt2OverPi * (1.0f + 3.0f * kGeluCubic * v * v);
      float grad = 0.5f * (1.0f + t) + 0.5f * v * (1.0f - t * t) * dinner;
      dx[i] = dy[i] * grad;
    }
  });
}

float softmax_cross_entropy(std::span<const float> logits, std::span<const std::int32_t> labels,
                            std::size_t batch, std::size_t classes, std::span<float> dlogits,
                            Device device) {
  if (batch == 0 || classes == 0) {
    throw std::invalid_argument("softmax_cross_entropy: batch and classes must be > 0");
  }
  detail::check_same_size(logits.size(), batch * classes, "softmax_cross_entropy logits");
  detail::check_same_size(labels.size(), batch, "softmax_cross_entropy labels");
  if (!dlogits.empty()) {
    detail::check_same_size(dlogits.size(), logits.size(), "softmax_cross_entropy dlogits");
  }
  if (device == Device::cuda) {
    require_device(device);
    float loss = 0.0f;
    APIARY_CUDA_CALL(loss =
                         cuda::softmax_cross_entropy(logits.data(), labels.data(), batch, classes,
                                                     dlogits.empty() ? nullptr : dlogits.data()));
    return loss;
  }
  double total = 0.0;  // per-row losses summed in row order (deterministic)
  const float inv_batch = 1.0f / static_cast<float>(batch);
  for (std::size_t r = 0; r < batch; ++r) {
    const std::int32_t label = labels[r];
    if (label < 0 || static_cast<std::size_t>(label) >= classes) {
      throw std::invalid_argument("softmax_cross_entropy: label " + std::to_string(label) +
                                  " outside [0, " + std::to_string(classes) + ")");
    }
    const float* row = logits.data() + r * classes;
    float max_logit = *std::max_element(row, row + classes);
    double denom = 0.0;
    for (std::size_t j = 0; j < classes; ++j)
      denom += std::exp(static_cast<double>(row[j] - max_logit));
    double log_denom = std::log(denom);
    total += log_denom - static_cast<double>(row[label] - max_logit);
    if (!dlogits.empty()) {
      float* drow = dlogits.data() + r * classes;
      for (std::size_t j = 0; j < classes; ++j) {
        float p = static_cast<float>(std::exp(static_cast<double>(row[j] - max_logit) - log_denom));
        drow[j] = (p - (static_cast<std::int32_t>(j) == label ? 1.0f : 0.0f)) * inv_batch;
      }
    }
  }
  return static_cast<float>(total / static_cast<double>(batch));
}

}  // namespace apiary::kernels
