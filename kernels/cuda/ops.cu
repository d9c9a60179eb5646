// CUDA implementations of the kernels/ operations (one .cu to keep nvcc time low).
#include "kernels/cuda/ops.hpp"
#include "kernels/reduce.hpp"

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

namespace apiary::kernels::cuda {

namespace {

void check(cudaError_t err, const char* what) {
  if (err != cudaSuccess) {
    throw std::runtime_error(std::string("CUDA ") + what + ": " + cudaGetErrorString(err));
  }
}

void check_launch(const char* what) {
  check(cudaGetLastError(), what);
}

constexpr int kThreads = 256;

unsigned grid_for(std::size_t n) {
  std::size_t blocks = (n + kThreads - 1) / kThreads;
  if (blocks > 65535) blocks = 65535;  // grid-stride loops cover the rest
  return static_cast<unsigned>(blocks == 0 ? 1 : blocks);
}

#define GRID_STRIDE(i, n)                                                                        \
  for (std::size_t i = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; i < (n); \
       i += static_cast<std::size_t>(gridDim.x) * blockDim.x)

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

// ---- optimizers ----------------------------------------------------------------

__global__ void sgd_kernel(float* p, const float* g, float* buf, std::size_t n, SgdConfig c) {
  GRID_STRIDE(i, n) {
    float gi = g[i] + c.weight_decay * p[i];
    if (buf == nullptr) {
      p[i] -= c.lr * gi;
    } else {
      float b = c.momentum * buf[i] + gi;
      buf[i] = b;
      p[i] -= c.lr * (c.nesterov ? gi + c.momentum * b : b);
    }
  }
}

__global__ void adam_kernel(float* p, const float* g, float* m, float* v, std::size_t n,
                            AdamConfig c, float c1, float c2) {
  float decay = c.decoupled_weight_decay ? 1.0f - c.lr * c.weight_decay : 1.0f;
  float l2 = c.decoupled_weight_decay ? 0.0f : c.weight_decay;
  GRID_STRIDE(i, n) {
    float gi = g[i] + l2 * p[i];
    float mi = c.beta1 * m[i] + (1.0f - c.beta1) * gi;
    float vi = c.beta2 * v[i] + (1.0f - c.beta2) * gi * gi;
    m[i] = mi;
    v[i] = vi;
    p[i] = p[i] * decay - c.lr * ((mi / c1) / (sqrtf(vi / c2) + c.eps));
  }
}

__device__ float lamb_update(const float* p, const float* m, const float* v, std::size_t i,
                             const LambConfig& c, float c1, float c2) {
  return (m[i] / c1) / (sqrtf(v[i] / c2) + c.eps) + c.weight_decay * p[i];
}

__global__ void lamb_moments_kernel(const float* p, const float* g, float* m, float* v,
                                    std::size_t n, LambConfig c, float c1, float c2,
                                    double* norms) {
  __shared__ double shared_p[kThreads];
  __shared__ double shared_u[kThreads];
  double local_p = 0.0, local_u = 0.0;
  GRID_STRIDE(i, n) {
    m[i] = c.beta1 * m[i] + (1.0f - c.beta1) * g[i];
    v[i] = c.beta2 * v[i] + (1.0f - c.beta2) * g[i] * g[i];
    double pi = p[i], ui = lamb_update(p, m, v, i, c, c1, c2);
    local_p += pi * pi;
    local_u += ui * ui;
  }
  shared_p[threadIdx.x] = local_p;
  shared_u[threadIdx.x] = local_u;
  __syncthreads();
  for (int stride = blockDim.x / 2; stride > 0; stride /= 2) {
    if (threadIdx.x < stride) {
      shared_p[threadIdx.x] += shared_p[threadIdx.x + stride];
      shared_u[threadIdx.x] += shared_u[threadIdx.x + stride];
    }
    __syncthreads();
  }
  if (threadIdx.x == 0) {
    atomicAdd(&norms[0], shared_p[0]);
    atomicAdd(&norms[1], shared_u[0]);
  }
}

__global__ void lamb_apply_kernel(float* p, const float* m, const float* v, std::size_t n,
                                  LambConfig c, float c1, float c2, float step_size) {
  GRID_STRIDE(i, n) {
    p[i] -= step_size * lamb_update(p, m, v, i, c, c1, c2);
  }
}

// ---- activations and loss ------------------------------------------------------

constexpr float kSqrt2OverPi = 0.7978845608028654f;
constexpr float kGeluCubic = 0.044715f;

__global__ void relu_forward_kernel(const float* x, float* y, std::size_t n) {
  GRID_STRIDE(i, n) {
    y[i] = x[i] > 0.0f ? x[i] : 0.0f;
  }
}
__global__ void relu_backward_kernel(const float* x, const float* dy, float* dx, std::size_t n) {
  GRID_STRIDE(i, n) {
    dx[i] = x[i] > 0.0f ? dy[i] : 0.0f;
  }
}
__global__ void gelu_forward_kernel(const float* x, float* y, std::size_t n) {
  GRID_STRIDE(i, n) {
    float v = x[i];
    y[i] = 0.5f * v * (1.0f + tanhf(kSqrt2OverPi * (v + kGeluCubic * v * v * v)));
  }
}
__global__ void gelu_backward_kernel(const float* x, const float* dy, float* dx, std::size_t n) {
  GRID_STRIDE(i, n) {
    float v = x[i];
    float t = tanhf(kSqrt2OverPi * (v + kGeluCubic * v * v * v));
    float dinner = kSqrt2OverPi * (1.0f + 3.0f * kGeluCubic * v * v);
    dx[i] = dy[i] * (0.5f * (1.0f + t) + 0.5f * v * (1.0f - t * t) * dinner);
  }
}

// One thread per row; classes are few (10) in our models. Row losses go to
// `row_loss` and are summed on the host in row order.
__global__ void softmax_xent_kernel(const float* logits, const std::int32_t* labels,
                                    std::size_t batch, std::size_t classes, float* dlogits,
                                    double* row_loss, int* bad_label) {
  GRID_STRIDE(r, batch) {
    std::int32_t label = labels[r];
    if (label < 0 || static_cast<std::size_t>(label) >= classes) {
      atomicExch(bad_label, 1);
      row_loss[r] = 0.0;
      continue;
    }
    const float* row = logits + r * classes;
    float max_logit = row[0];
    for (std::size_t j = 1; j < classes; ++j) max_logit = fmaxf(max_logit, row[j]);
    double denom = 0.0;
    for (std::size_t j = 0; j < classes; ++j) denom += exp(static_cast<double>(row[j] - max_logit));
    double log_denom = log(denom);
    row_loss[r] = log_denom - static_cast<double>(row[label] - max_logit);
    if (dlogits) {
      float inv_batch = 1.0f / static_cast<float>(batch);
      for (std::size_t j = 0; j < classes; ++j) {
        float p = static_cast<float>(exp(static_cast<double>(row[j] - max_logit) - log_denom));
        dlogits[r * classes + j] =
            (p - (static_cast<std::int32_t>(j) == label ? 1.0f : 0.0f)) * inv_batch;
      }
    }
  }
}

__global__ void add_bias_rows_kernel(float* y, const float* bias, std::size_t rows,
                                     std::size_t cols) {
  GRID_STRIDE(i, rows * cols) {
    y[i] = __fadd_rn(y[i], bias[i % cols]);
  }
}
// One thread per column, rows in order: same order as the CPU.
__global__ void sum_rows_kernel(const float* dy, float* db, std::size_t rows, std::size_t cols) {
  GRID_STRIDE(j, cols) {
    float acc = 0.0f;
    for (std::size_t r = 0; r < rows; ++r) acc = __fadd_rn(acc, dy[r * cols + j]);
    db[j] = acc;
  }
}

// A device flag for kernels to report bad input; RAII so a throw cannot leak it.
class DeviceFlag {
 public:
  DeviceFlag() {
    check(cudaMalloc(&flag_, sizeof(int)), "cudaMalloc");
    check(cudaMemset(flag_, 0, sizeof(int)), "cudaMemset");
  }
  ~DeviceFlag() { cudaFree(flag_); }
  DeviceFlag(const DeviceFlag&) = delete;
  DeviceFlag& operator=(const DeviceFlag&) = delete;
  int* get() { return flag_; }
  bool raised() {
    int value = 0;
    check(cudaMemcpy(&value, flag_, sizeof(int), cudaMemcpyDeviceToHost), "cudaMemcpy flag");
    return value != 0;
  }

 private:
  int* flag_ = nullptr;
};

template <typename T>
class DeviceArray {
 public:
  explicit DeviceArray(std::size_t n) : n_(n) {
    check(cudaMalloc(&data_, n * sizeof(T) + 1), "cudaMalloc");
    check(cudaMemset(data_, 0, n * sizeof(T) + 1), "cudaMemset");
  }
  ~DeviceArray() { cudaFree(data_); }
  DeviceArray(const DeviceArray&) = delete;
  DeviceArray& operator=(const DeviceArray&) = delete;
  T* get() { return data_; }
  std::vector<T> to_host() {
    std::vector<T> host(n_);
    check(cudaMemcpy(host.data(), data_, n_ * sizeof(T), cudaMemcpyDeviceToHost), "cudaMemcpy");
    return host;
  }

 private:
  T* data_ = nullptr;
  std::size_t n_;
};

cublasHandle_t cublas_handle() {
  // One handle per thread, created on first use and kept for the thread's life.
  struct Handle {
    cublasHandle_t handle = nullptr;
    Handle() {
      if (cublasCreate(&handle) != CUBLAS_STATUS_SUCCESS) {
        throw std::runtime_error("cublasCreate failed");
      }
      // Plain fp32 math (no TF32) so results stay close to the CPU's.
      cublasSetMathMode(handle, CUBLAS_DEFAULT_MATH);
    }
    ~Handle() { cublasDestroy(handle); }
  };
  thread_local Handle h;
  return h.handle;
}

}  // namespace

// ---- host entry points -----------------------------------------------------------

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
  return detail::pairwise_tree_sum(host);
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

void sgd_step(float* params, const float* grads, float* momentum_buf, std::size_t n,
              const SgdConfig& config) {
  if (n == 0) return;
  sgd_kernel<<<grid_for(n), kThreads>>>(params, grads, momentum_buf, n, config);
  check_launch("sgd_step");
}

void adam_step(float* params, const float* grads, float* exp_avg, float* exp_avg_sq, std::size_t n,
               const AdamConfig& config, float c1, float c2) {
  if (n == 0) return;
  adam_kernel<<<grid_for(n), kThreads>>>(params, grads, exp_avg, exp_avg_sq, n, config, c1, c2);
  check_launch("adam_step");
}

void lamb_step(float* params, const float* grads, float* exp_avg, float* exp_avg_sq,
               std::span<const TensorSlice> slices, const LambConfig& config, float c1, float c2) {
  for (const auto& s : slices) {
    if (s.size == 0) continue;
    float* p = params + s.offset;
    float* m = exp_avg + s.offset;
    float* v = exp_avg_sq + s.offset;
    DeviceArray<double> norms(2);
    lamb_moments_kernel<<<grid_for(s.size), kThreads>>>(p, grads + s.offset, m, v, s.size, config,
                                                        c1, c2, norms.get());
    check_launch("lamb_step moments");
    std::vector<double> host = norms.to_host();
    float trust = 1.0f;
    if (host[0] > 0.0 && host[1] > 0.0) {
      trust = static_cast<float>(std::sqrt(host[0]) / std::sqrt(host[1]));
    }
    lamb_apply_kernel<<<grid_for(s.size), kThreads>>>(p, m, v, s.size, config, c1, c2,
                                                      config.lr * trust);
    check_launch("lamb_step apply");
  }
}

void relu_forward(const float* x, float* y, std::size_t n) {
  if (n == 0) return;
  relu_forward_kernel<<<grid_for(n), kThreads>>>(x, y, n);
  check_launch("relu_forward");
}
void relu_backward(const float* x, const float* dy, float* dx, std::size_t n) {
  if (n == 0) return;
  relu_backward_kernel<<<grid_for(n), kThreads>>>(x, dy, dx, n);
  check_launch("relu_backward");
}
void gelu_forward(const float* x, float* y, std::size_t n) {
  if (n == 0) return;
  gelu_forward_kernel<<<grid_for(n), kThreads>>>(x, y, n);
  check_launch("gelu_forward");
}
void gelu_backward(const float* x, const float* dy, float* dx, std::size_t n) {
  if (n == 0) return;
  gelu_backward_kernel<<<grid_for(n), kThreads>>>(x, dy, dx, n);
  check_launch("gelu_backward");
}

float softmax_cross_entropy(const float* logits, const std::int32_t* labels, std::size_t batch,
                            std::size_t classes, float* dlogits) {
  DeviceArray<double> row_loss(batch);
  DeviceFlag bad;
  softmax_xent_kernel<<<grid_for(batch), kThreads>>>(logits, labels, batch, classes, dlogits,
                                                     row_loss.get(), bad.get());
  check_launch("softmax_cross_entropy");
  if (bad.raised()) throw std::invalid_argument("softmax_cross_entropy: label out of range");
  double total = 0.0;
  for (double loss : row_loss.to_host()) total += loss;
  return static_cast<float>(total / static_cast<double>(batch));
}

void gemm(const GemmShape& s, float alpha, const float* a, const float* b, float beta, float* c) {
  // Row-major C = op(A)·op(B) is column-major Cᵀ = op(B)ᵀ·op(A)ᵀ: swap the operands.
  const bool ta = s.trans_a == Transpose::yes, tb = s.trans_b == Transpose::yes;
  const int m = static_cast<int>(s.m), n = static_cast<int>(s.n), k = static_cast<int>(s.k);
  const int lda = ta ? m : k;
  const int ldb = tb ? k : n;
  if (k == 0) {  // C = beta·C, with beta == 0 meaning "overwrite" as in BLAS
    if (beta == 0.0f) {
      fill(c, s.m * s.n, 0.0f);
    } else {
      scale(c, s.m * s.n, beta);
    }
    return;
  }
  cublasStatus_t status =
      cublasSgemm(cublas_handle(), tb ? CUBLAS_OP_T : CUBLAS_OP_N, ta ? CUBLAS_OP_T : CUBLAS_OP_N,
                  n, m, k, &alpha, b, ldb, a, lda, &beta, c, n);
  if (status != CUBLAS_STATUS_SUCCESS) {
    throw std::runtime_error("cublasSgemm failed with status " + std::to_string(status));
  }
}

void add_bias_rows(float* y, const float* bias, std::size_t rows, std::size_t cols) {
  if (rows * cols == 0) return;
  add_bias_rows_kernel<<<grid_for(rows * cols), kThreads>>>(y, bias, rows, cols);
  check_launch("add_bias_rows");
}

void sum_rows(const float* dy, float* db, std::size_t rows, std::size_t cols) {
  if (cols == 0) return;
  sum_rows_kernel<<<grid_for(cols), kThreads>>>(dy, db, rows, cols);
  check_launch("sum_rows");
}

}  // namespace apiary::kernels::cuda
