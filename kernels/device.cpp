#include "kernels/device.hpp"

#ifdef APIARY_WITH_CUDA
#include <cuda_runtime_api.h>
#endif

namespace apiary::kernels {

namespace {
struct Probe {
  bool available = false;
  std::string status;
};

Probe probe() {
  Probe p;
#ifdef APIARY_WITH_CUDA
  int count = 0;
  cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) {
    p.status = std::string("no CUDA device: ") + cudaGetErrorString(err);
  } else if (count == 0) {
    p.status = "no CUDA device: none found";
  } else {
    cudaDeviceProp prop{};
    cudaGetDeviceProperties(&prop, 0);
    p.available = true;
    p.status = prop.name;
  }
#else
  p.status = "built without CUDA";
#endif
  return p;
}

const Probe& cached() {
  static const Probe p = probe();
  return p;
}
}  // namespace

bool cuda_built() noexcept {
#ifdef APIARY_WITH_CUDA
  return true;
#else
  return false;
#endif
}

bool cuda_available() noexcept {
  return cached().available;
}
std::string cuda_status() {
  return cached().status;
}

}  // namespace apiary::kernels
