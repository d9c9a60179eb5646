#pragma once
// Umbrella header for kernels/: pure compute, CPU and CUDA behind one dispatch.
// Dispatch convention: every operation is a free function over std::span with a
// trailing `Device device = Device::cpu`; the spans must live on that device.
// Device::cuda throws std::runtime_error when cuda_available() is false.
#include "kernels/activation.hpp"
#include "kernels/blas.hpp"
#include "kernels/convert.hpp"
#include "kernels/device.hpp"
#include "kernels/memory.hpp"
#include "kernels/optimizer.hpp"
#include "kernels/quantize.hpp"
#include "kernels/reduce.hpp"
