#pragma once
// Internal to kernels/cuda/: error checks, launch geometry and small RAII device
// buffers shared by the CUDA translation units. Failures throw std::runtime_error.
#include <cuda_runtime.h>

#include <cstddef>
#include <stdexcept>
#include <string>
#include <vector>

namespace apiary::kernels::cuda::detail {

inline void check(cudaError_t err, const char* what) {
  if (err != cudaSuccess) {
    throw std::runtime_error(std::string("CUDA ") + what + ": " + cudaGetErrorString(err));
  }
}

inline void check_launch(const char* what) {
  check(cudaGetLastError(), what);
}

constexpr int kThreads = 256;

inline unsigned grid_for(std::size_t n) {
  std::size_t blocks = (n + kThreads - 1) / kThreads;
  if (blocks > 65535) blocks = 65535;  // grid-stride loops cover the rest
  return static_cast<unsigned>(blocks == 0 ? 1 : blocks);
}

#define GRID_STRIDE(i, n)                                                                        \
  for (std::size_t i = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; i < (n); \
       i += static_cast<std::size_t>(gridDim.x) * blockDim.x)

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

}  // namespace apiary::kernels::cuda::detail
