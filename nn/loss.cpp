#include "nn/loss.hpp"

#include "kernels/activation.hpp"
#include "nn/layers.hpp"

#include <stdexcept>

namespace apiary::nn {

namespace {
void check_inputs(const Tensor& logits, const Tensor& labels) {
  if (logits.shape().size() != 2 || logits.dtype() != DType::f32) {
    throw std::invalid_argument("softmax cross-entropy: logits must be f32 [batch, classes], got " +
                                shape_string(logits.shape()));
  }
  if (labels.dtype() != DType::i32 || labels.numel() != logits.dim(0) ||
      labels.device() != logits.device()) {
    throw std::invalid_argument("softmax cross-entropy: labels must be i32 [" +
                                std::to_string(logits.dim(0)) + "] on the logits' device");
  }
}
}  // namespace

float SoftmaxCrossEntropy::forward_backward(const Tensor& logits, const Tensor& labels) {
  check_inputs(logits, labels);
  Tensor grad = reuse_or_allocate(grad_, logits.shape(), logits.device());
  return kernels::softmax_cross_entropy(logits.span<const float>(),
                                        labels.span<const std::int32_t>(), logits.dim(0),
                                        logits.dim(1), grad.span<float>(), logits.device());
}

float SoftmaxCrossEntropy::loss(const Tensor& logits, const Tensor& labels) {
  check_inputs(logits, labels);
  return kernels::softmax_cross_entropy(logits.span<const float>(),
                                        labels.span<const std::int32_t>(), logits.dim(0),
                                        logits.dim(1), {}, logits.device());
}

}  // namespace apiary::nn
