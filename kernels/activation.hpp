#pragma once
// Activations and the softmax cross-entropy loss, forward and backward.
// GELU is the tanh approximation: 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))).
// Buffers are flat (any shape); all spans live on `device`.
// Errors: std::invalid_argument for size mismatches and labels out of range.
#include "kernels/device.hpp"

#include <cstddef>
#include <cstdint>
#include <span>

namespace apiary::kernels {

void relu_forward(std::span<const float> x, std::span<float> y, Device device = Device::cpu);
// dx = dy · [x > 0]
void relu_backward(std::span<const float> x, std::span<const float> dy, std::span<float> dx,
                   Device device = Device::cpu);
void gelu_forward(std::span<const float> x, std::span<float> y, Device device = Device::cpu);
void gelu_backward(std::span<const float> x, std::span<const float> dy, std::span<float> dx,
                   Device device = Device::cpu);

// logits[batch×classes], labels[batch] in [0, classes). Returns the mean loss
// over the batch, -mean log softmax(logits)[label], and writes
// dlogits = (softmax(logits) − onehot(label)) / batch (dlogits may be empty to skip).
// Numerically stable (max subtracted). For cuda, labels live on the device too.
float softmax_cross_entropy(std::span<const float> logits, std::span<const std::int32_t> labels,
                            std::size_t batch, std::size_t classes, std::span<float> dlogits,
                            Device device = Device::cpu);

}  // namespace apiary::kernels
