#pragma once
// Softmax cross-entropy over logits [batch × classes] and integer labels [batch]
// (an i32 tensor on the logits' device). Returns the mean loss; the gradient
// with respect to the logits (already divided by batch) is kept and returned by
// grad(). Errors: std::invalid_argument for shape mismatches and bad labels.
#include "nn/tensor.hpp"

namespace apiary::nn {

class SoftmaxCrossEntropy {
 public:
  float forward_backward(const Tensor& logits, const Tensor& labels);
  // Loss only (no gradient), e.g. for evaluation.
  static float loss(const Tensor& logits, const Tensor& labels);
  const Tensor& grad() const noexcept { return grad_; }

 private:
  Tensor grad_;
};

}  // namespace apiary::nn
