#pragma once
// Internal to kernels/: routes a call to the CUDA implementation when built with
// CUDA. require_device() throws first when no device is usable, so the
// expansion without CUDA (nothing) is never reached for Device::cuda.
#include "kernels/memory.hpp"

#include <stdexcept>
#include <string>

#ifdef APIARY_WITH_CUDA
#include "kernels/cuda/ops.hpp"
#define APIARY_CUDA_CALL(call) call
#else
#define APIARY_CUDA_CALL(call) \
  do {                         \
  } while (false)
#endif

namespace apiary::kernels::detail {

inline void check_same_size(std::size_t a, std::size_t b, const char* what) {
  if (a != b) {
    throw std::invalid_argument(std::string(what) + ": size mismatch (" + std::to_string(a) +
                                " vs " + std::to_string(b) + ")");
  }
}

}  // namespace apiary::kernels::detail
