// CUDA implementations of the kernels/ training operations: optimizer steps,
// activations, the loss and cuBLAS GEMM (memory and averaging ops are in ops.cu).
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/ops.hpp"

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

namespace apiary::kernels::cuda {

using namespace detail;

namespace {

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
