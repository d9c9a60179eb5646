#pragma once
// Elementwise reductions over flat fp32 buffers — the work of averaging.
//
// Dispatch: every function takes a trailing Device (default cpu); all spans must
// live on that device (host memory for cpu, CUDA device memory for cuda).
// CPU versions split buffers larger than ~1 M elements over a few threads
// (contiguous chunks); results never depend on the split.
//
// Determinism: sum(), sum_squares() and global_norm() use a fixed order that is
// the same on every peer and for every thread count: the input is cut into
// blocks of kSumBlock elements; each block is summed with 16 interleaved lanes
// combined by a fixed pairwise tree; block sums are combined by a fixed pairwise
// tree. So the same inputs give bit-identical results everywhere. The CUDA
// path uses the same blocks, lanes and trees with round-to-nearest intrinsics
// (no FMA contraction), so it matches the CPU bit for bit too.
// Errors: std::invalid_argument on size mismatch, std::runtime_error for CUDA failures.
#include "kernels/device.hpp"

#include <cstddef>
#include <span>

namespace apiary::kernels {

inline constexpr std::size_t kSumBlock = 4096;

// acc[i] += weight · x[i]
void weighted_accumulate(std::span<float> acc, std::span<const float> x, float weight,
                         Device device = Device::cpu);
// x[i] *= factor
void scale(std::span<float> x, float factor, Device device = Device::cpu);
// dst[i] = src[i] (parallel copy; the memcpy baseline of the benchmark)
void copy(std::span<float> dst, std::span<const float> src, Device device = Device::cpu);
// x[i] = value
void fill(std::span<float> x, float value, Device device = Device::cpu);

// Deterministic Σ x[i] and Σ x[i]² (see above).
float sum(std::span<const float> x, Device device = Device::cpu);
float sum_squares(std::span<const float> x, Device device = Device::cpu);

// Number of worker threads the CPU kernels use for large buffers (default:
// min(hardware_concurrency, 8)). Settable for tests and benchmarks; results are
// identical for every value. 1 disables threading.
void set_cpu_threads(unsigned threads);
unsigned cpu_threads();

}  // namespace apiary::kernels
