#pragma once
// Internal to kernels/: the CUDA implementations behind the public dispatch.
// Compiled only when nvcc is found (APIARY_WITH_CUDA). Pointers are device
// pointers; callers have checked sizes. Failures throw std::runtime_error.
// Results that must match the CPU bit for bit (sum, quantize, dequantize,
// weighted accumulate, sum_rows) use explicit round-to-nearest intrinsics so
// nvcc cannot contract multiply-adds into FMAs.
#include "kernels/blas.hpp"
#include "kernels/optimizer.hpp"

#include <cstddef>
#include <cstdint>
#include <span>

namespace apiary::kernels::cuda {

void* device_alloc(std::size_t bytes);
void device_free(void* ptr) noexcept;
void copy(void* dst, bool dst_on_device, const void* src, bool src_on_device, std::size_t bytes);
void zero(void* dst, std::size_t bytes);
void synchronize();

void weighted_accumulate(float* acc, const float* x, std::size_t n, float weight);
void scale(float* x, std::size_t n, float factor);
void fill(float* x, std::size_t n, float value);
float sum(const float* x, std::size_t n, bool squares);

void to_fp16(const float* src, std::uint16_t* dst, std::size_t n);
void from_fp16(const std::uint16_t* src, float* dst, std::size_t n);
void to_bf16(const float* src, std::uint16_t* dst, std::size_t n);
void from_bf16(const std::uint16_t* src, float* dst, std::size_t n);

// residual == nullptr: plain quantization; otherwise error feedback.
void quantize(const float* x, std::size_t n, std::byte* out, std::size_t block_size,
              float* residual);
// accumulate: out += weight · x̂; else out = x̂.
void dequantize(const std::byte* in, float* out, std::size_t n, std::size_t block_size,
                float weight, bool accumulate);

void sgd_step(float* params, const float* grads, float* momentum_buf, std::size_t n,
              const SgdConfig& config);
void adam_step(float* params, const float* grads, float* exp_avg, float* exp_avg_sq, std::size_t n,
               const AdamConfig& config, float c1, float c2);
void lamb_step(float* params, const float* grads, float* exp_avg, float* exp_avg_sq,
               std::span<const TensorSlice> slices, const LambConfig& config, float c1, float c2);

void relu_forward(const float* x, float* y, std::size_t n);
void relu_backward(const float* x, const float* dy, float* dx, std::size_t n);
void gelu_forward(const float* x, float* y, std::size_t n);
void gelu_backward(const float* x, const float* dy, float* dx, std::size_t n);
float softmax_cross_entropy(const float* logits, const std::int32_t* labels, std::size_t batch,
                            std::size_t classes, float* dlogits);

void gemm(const GemmShape& shape, float alpha, const float* a, const float* b, float beta,
          float* c);
void add_bias_rows(float* y, const float* bias, std::size_t rows, std::size_t cols);
void sum_rows(const float* dy, float* db, std::size_t rows, std::size_t cols);

}  // namespace apiary::kernels::cuda

namespace apiary::kernels::detail {
// The CPU's fixed pairwise tree (reduce.cpp), reused to combine per-block sums.
float pairwise_tree_sum(std::span<float> values);
}  // namespace apiary::kernels::detail
