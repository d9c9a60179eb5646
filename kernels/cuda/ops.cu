// CUDA implementations of kernels/ memory, reductions, conversions and 8-bit
// quantization (training ops are in train_ops.cu).
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/ops.hpp"
#include "kernels/reduce.hpp"

#include <cuda_runtime.h>

#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

namespace apiary::kernels::cuda {

using namespace detail;

namespace {

// ---- elementwise -------------------------------------------------------------

__global__ void weighted_accumulate_kernel(float* acc, const float* x, std::size_t n, float w) {
  GRID_STRIDE(i, n) {
    acc[i] = __fadd_rn(acc[i], __fmul_rn(w, x[i]));
  }
}
__global__ void scale_kernel(float* x, std::size_t n, float f) {
  GRID_STRIDE(i, n) {
    x[i] = __fmul_rn(x[i], f);
  }
}
__global__ void fill_kernel(float* x, std::size_t n, float v) {
  GRID_STRIDE(i, n) {
    x[i] = v;
  }
}

// ---- deterministic sum: same blocks, lanes and trees as the CPU --------------

constexpr int kLanes = 16;

__device__ float lane_tree(float* v) {  // pairwise tree over 16 values, CPU order
  int n = kLanes;
  while (n > 1) {
    int half = n / 2;
    for (int i = 0; i < half; ++i) v[i] = __fadd_rn(v[2 * i], v[2 * i + 1]);
    if (n % 2) v[half] = v[n - 1];
    n = half + n % 2;
  }
  return v[0];
}

// One thread per (sum block, lane); 16 consecutive threads share a sum block.
__global__ void block_sum_kernel(const float* x, std::size_t n, std::size_t blocks, bool squares,
                                 float* partial) {
  __shared__ float lanes[kThreads];
  std::size_t global = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x;
  std::size_t sum_block = global / kLanes;
  int lane = static_cast<int>(global % kLanes);
  float acc = 0.0f;
  if (sum_block < blocks) {
    std::size_t begin = sum_block * kSumBlock;
    std::size_t end = begin + kSumBlock < n ? begin + kSumBlock : n;
    for (std::size_t i = begin + lane; i < end; i += kLanes) {
      float v = x[i];
      acc = __fadd_rn(acc, squares ? __fmul_rn(v, v) : v);
    }
  }
  lanes[threadIdx.x] = acc;
  __syncthreads();
  if (lane == 0 && sum_block < blocks) {
    float local[kLanes];
    for (int j = 0; j < kLanes; ++j) local[j] = lanes[threadIdx.x + j];
    partial[sum_block] = lane_tree(local);
  }
}

// ---- fp16 / bf16 (same bit logic as convert.cpp) ------------------------------

__device__ std::uint16_t to_half_bits(float value) {
  std::uint32_t f = __float_as_uint(value);
  std::uint32_t sign = (f >> 16) & 0x8000u;
  std::uint32_t a = f & 0x7fffffffu;
  if (a > 0x7f800000u) return static_cast<std::uint16_t>(sign | 0x7e00u | ((a >> 13) & 0x3ffu));
  if (a == 0x7f800000u) return static_cast<std::uint16_t>(sign | 0x7c00u);
  if (a >= 0x477fe000u) return static_cast<std::uint16_t>(sign | 0x7bffu);
  if (a < 0x38800000u) {
    float shifted = __fadd_rn(__uint_as_float(a), 0.5f);
    return static_cast<std::uint16_t>(sign | (__float_as_uint(shifted) - 0x3f000000u));
  }
  std::uint32_t odd = (a >> 13) & 1u;
  return static_cast<std::uint16_t>(sign | ((a - 0x38000000u + 0xfffu + odd) >> 13));
}

__device__ float from_half_bits(std::uint16_t bits) {
  std::uint32_t sign = static_cast<std::uint32_t>(bits & 0x8000u) << 16;
  std::uint32_t exponent = (bits >> 10) & 0x1fu;
  std::uint32_t mantissa = bits & 0x3ffu;
  if (exponent == 0x1fu) return __uint_as_float(sign | 0x7f800000u | (mantissa << 13));
  if (exponent == 0) {
    float magnitude = __fmul_rn(static_cast<float>(mantissa), 5.9604644775390625e-8f);
    return __uint_as_float(sign | __float_as_uint(magnitude));
  }
  return __uint_as_float(sign | ((exponent + 112u) << 23) | (mantissa << 13));
}

__device__ std::uint16_t to_bf16_bits(float value) {
  std::uint32_t f = __float_as_uint(value);
  std::uint32_t a = f & 0x7fffffffu;
  if (a > 0x7f800000u) return static_cast<std::uint16_t>((f >> 16) | 0x0040u);
  if (a == 0x7f800000u) return static_cast<std::uint16_t>(f >> 16);
  std::uint32_t rounded = (f + 0x7fffu + ((f >> 16) & 1u)) >> 16;
  if ((rounded & 0x7fffu) == 0x7f80u) rounded -= 1;
  return static_cast<std::uint16_t>(rounded);
}

__global__ void to_fp16_kernel(const float* src, std::uint16_t* dst, std::size_t n) {
  GRID_STRIDE(i, n) {
    dst[i] = to_half_bits(src[i]);
  }
}
__global__ void from_fp16_kernel(const std::uint16_t* src, float* dst, std::size_t n) {
  GRID_STRIDE(i, n) {
    dst[i] = from_half_bits(src[i]);
  }
}
__global__ void to_bf16_kernel(const float* src, std::uint16_t* dst, std::size_t n) {
  GRID_STRIDE(i, n) {
    dst[i] = to_bf16_bits(src[i]);
  }
}
__global__ void from_bf16_kernel(const std::uint16_t* src, float* dst, std::size_t n) {
  GRID_STRIDE(i, n) {
    dst[i] = __uint_as_float(static_cast<std::uint32_t>(src[i]) << 16);
  }
}

// ---- 8-bit blockwise quantization: one CUDA block per quantization block ------

__device__ float decode_code(signed char code, float absmax) {
  return __fmul_rn(absmax, __fdiv_rn(static_cast<float>(code), 127.0f));
}

__global__ void quantize_kernel(const float* x, std::size_t n, std::byte* out,
                                std::size_t block_size, float* residual, int* bad_input) {
  __shared__ float shared_max[kThreads];
  std::size_t first = blockIdx.x * block_size;
  std::size_t count = first + block_size < n ? block_size : n - first;
  const float* src = x + first;
  float* res = residual ? residual + first : nullptr;
  float local_max = 0.0f;
  for (std::size_t i = threadIdx.x; i < count; i += blockDim.x) {
    float v = res ? __fadd_rn(src[i], res[i]) : src[i];
    if (!isfinite(v)) atomicExch(bad_input, 1);
    local_max = fmaxf(local_max, fabsf(v));
  }
  shared_max[threadIdx.x] = local_max;
  __syncthreads();
  for (int stride = blockDim.x / 2; stride > 0; stride /= 2) {
    if (threadIdx.x < stride) {
      shared_max[threadIdx.x] = fmaxf(shared_max[threadIdx.x], shared_max[threadIdx.x + stride]);
    }
    __syncthreads();
  }
  float absmax = shared_max[0];
  std::byte* enc = out + blockIdx.x * (block_size + sizeof(float));
  if (threadIdx.x == 0) memcpy(enc, &absmax, sizeof(float));
  signed char* codes = reinterpret_cast<signed char*>(enc + sizeof(float));
  float multiplier = absmax > 0.0f ? __fdiv_rn(127.0f, absmax) : 0.0f;
  for (std::size_t i = threadIdx.x; i < count; i += blockDim.x) {
    float v = res ? __fadd_rn(src[i], res[i]) : src[i];
    // Subnormal absmax: 127/absmax is inf, so divide instead (as the CPU does).
    float r = absmax > 0.0f && absmax < 1.17549435e-38f
                  ? rintf(__fmul_rn(127.0f, __fdiv_rn(v, absmax)))
                  : rintf(__fmul_rn(v, multiplier));
    r = fminf(127.0f, fmaxf(-127.0f, r));
    signed char code = static_cast<signed char>(static_cast<int>(r));
    codes[i] = code;
    if (res) res[i] = __fsub_rn(v, decode_code(code, absmax));
  }
}

__global__ void dequantize_kernel(const std::byte* in, float* out, std::size_t n,
                                  std::size_t block_size, float weight, bool accumulate,
                                  int* bad_input) {
  std::size_t first = blockIdx.x * block_size;
  std::size_t count = first + block_size < n ? block_size : n - first;
  const std::byte* enc = in + blockIdx.x * (block_size + sizeof(float));
  float absmax;
  memcpy(&absmax, enc, sizeof(float));
  if (!(absmax >= 0.0f && absmax <= 3.402823466e38f)) {
    if (threadIdx.x == 0) atomicExch(bad_input, 1);
    return;
  }
  const signed char* codes = reinterpret_cast<const signed char*>(enc + sizeof(float));
  float* dst = out + first;
  for (std::size_t i = threadIdx.x; i < count; i += blockDim.x) {
    float v = decode_code(codes[i], absmax);
    dst[i] = accumulate ? __fadd_rn(dst[i], __fmul_rn(weight, v)) : v;
  }
}

}  // namespace

void* device_alloc(std::size_t bytes) {
  void* ptr = nullptr;
  check(cudaMalloc(&ptr, bytes), "cudaMalloc");
  return ptr;
}

void device_free(void* ptr) noexcept {
  cudaFree(ptr);
}

void copy(void* dst, bool dst_on_device, const void* src, bool src_on_device, std::size_t bytes) {
  cudaMemcpyKind kind = dst_on_device
                            ? (src_on_device ? cudaMemcpyDeviceToDevice : cudaMemcpyHostToDevice)
                            : (src_on_device ? cudaMemcpyDeviceToHost : cudaMemcpyHostToHost);
  check(cudaMemcpy(dst, src, bytes, kind), "cudaMemcpy");
}

void zero(void* dst, std::size_t bytes) {
  check(cudaMemset(dst, 0, bytes), "cudaMemset");
}
void synchronize() {
  check(cudaDeviceSynchronize(), "cudaDeviceSynchronize");
}

void weighted_accumulate(float* acc, const float* x, std::size_t n, float weight) {
  if (n == 0) return;
  weighted_accumulate_kernel<<<grid_for(n), kThreads>>>(acc, x, n, weight);
  check_launch("weighted_accumulate");
}

void scale(float* x, std::size_t n, float factor) {
  if (n == 0) return;
  scale_kernel<<<grid_for(n), kThreads>>>(x, n, factor);
  check_launch("scale");
}

void fill(float* x, std::size_t n, float value) {
  if (n == 0) return;
  fill_kernel<<<grid_for(n), kThreads>>>(x, n, value);
  check_launch("fill");
}

float sum(const float* x, std::size_t n, bool squares) {
  std::size_t blocks = (n + kSumBlock - 1) / kSumBlock;
  if (blocks == 0) return 0.0f;
  DeviceArray<float> partial(blocks);
  std::size_t threads = blocks * kLanes;
  unsigned grid = static_cast<unsigned>((threads + kThreads - 1) / kThreads);
  block_sum_kernel<<<grid, kThreads>>>(x, n, blocks, squares, partial.get());
  check_launch("sum");
  std::vector<float> host = partial.to_host();
  return kernels::detail::pairwise_tree_sum(host);
}

void to_fp16(const float* src, std::uint16_t* dst, std::size_t n) {
  if (n == 0) return;
  to_fp16_kernel<<<grid_for(n), kThreads>>>(src, dst, n);
  check_launch("to_fp16");
}
void from_fp16(const std::uint16_t* src, float* dst, std::size_t n) {
  if (n == 0) return;
  from_fp16_kernel<<<grid_for(n), kThreads>>>(src, dst, n);
  check_launch("from_fp16");
}
void to_bf16(const float* src, std::uint16_t* dst, std::size_t n) {
  if (n == 0) return;
  to_bf16_kernel<<<grid_for(n), kThreads>>>(src, dst, n);
  check_launch("to_bf16");
}
void from_bf16(const std::uint16_t* src, float* dst, std::size_t n) {
  if (n == 0) return;
  from_bf16_kernel<<<grid_for(n), kThreads>>>(src, dst, n);
  check_launch("from_bf16");
}

void quantize(const float* x, std::size_t n, std::byte* out, std::size_t block_size,
              float* residual) {
  std::size_t blocks = (n + block_size - 1) / block_size;
  if (blocks == 0) return;
  if (blocks > 0x7fffffffu) throw std::invalid_argument("quantize: too many blocks for CUDA");
  DeviceFlag bad;
  quantize_kernel<<<static_cast<unsigned>(blocks), kThreads>>>(x, n, out, block_size, residual,
                                                               bad.get());
  check_launch("quantize");
  if (bad.raised()) throw std::invalid_argument("quantize: input contains inf or NaN");
}

void dequantize(const std::byte* in, float* out, std::size_t n, std::size_t block_size,
                float weight, bool accumulate) {
  std::size_t blocks = (n + block_size - 1) / block_size;
  if (blocks == 0) return;
  if (blocks > 0x7fffffffu) throw std::invalid_argument("dequantize: too many blocks for CUDA");
  DeviceFlag bad;
  dequantize_kernel<<<static_cast<unsigned>(blocks), kThreads>>>(in, out, n, block_size, weight,
                                                                 accumulate, bad.get());
  check_launch("dequantize");
  if (bad.raised()) {
    throw std::invalid_argument("dequantize: block scale is negative, inf or NaN");
  }
}

}  // namespace apiary::kernels::cuda
