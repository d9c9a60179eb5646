#include "kernels/reduce.hpp"

#include "kernels/dispatch.hpp"
#include "kernels/parallel.hpp"

#include <algorithm>
#include <cstring>
#include <vector>

namespace apiary::kernels {

namespace {
// Below this many elements threading costs more than it saves.
constexpr std::size_t kParallelMin = std::size_t{1} << 20;
constexpr std::size_t kLanes = 16;

// Fixed pairwise tree over v (modified in place); same order for the same length.
float pairwise_tree(std::span<float> v) {
  std::size_t n = v.size();
  if (n == 0) return 0.0f;
  while (n > 1) {
    std::size_t half = n / 2;
    for (std::size_t i = 0; i < half; ++i) v[i] = v[2 * i] + v[2 * i + 1];
    if (n % 2) v[half] = v[n - 1];
    n = half + n % 2;
  }
  return v[0];
}

// Σ over one block with 16 interleaved lanes (vectorizes), lanes combined by a tree.
template <bool kSquares>
float block_sum(const float* x, std::size_t n) {
  float lanes[kLanes] = {};
  std::size_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    for (std::size_t j = 0; j < kLanes; ++j) {
      float v = x[i + j];
      lanes[j] += kSquares ? v * v : v;
    }
  }
  for (std::size_t j = 0; i < n; ++i, ++j) {
    float v = x[i];
    lanes[j] += kSquares ? v * v : v;
  }
  return pairwise_tree(lanes);
}

template <bool kSquares>
float deterministic_sum(std::span<const float> x) {
  std::size_t blocks = (x.size() + kSumBlock - 1) / kSumBlock;
  if (blocks == 0) return 0.0f;
  std::vector<float> partial(blocks);
  detail::parallel_for(x.size(), kParallelMin, kSumBlock, [&](std::size_t begin, std::size_t end) {
    for (std::size_t b = begin; b < end; b += kSumBlock) {
      partial[b / kSumBlock] = block_sum<kSquares>(x.data() + b, std::min(kSumBlock, end - b));
    }
  });
  return pairwise_tree(partial);
}
}  // namespace

namespace detail {
// Shared with the CUDA path so both combine block sums in the same order.
float pairwise_tree_sum(std::span<float> v) {
  return pairwise_tree(v);
}
}  // namespace detail

void weighted_accumulate(std::span<float> acc, std::span<const float> x, float weight,
                         Device device) {
  detail::check_same_size(acc.size(), x.size(), "weighted_accumulate");
  if (device == Device::cuda) {
    require_device(device);
    APIARY_CUDA_CALL(cuda::weighted_accumulate(acc.data(), x.data(), acc.size(), weight));
    return;
  }
  detail::parallel_for(acc.size(), kParallelMin, 16, [&](std::size_t begin, std::size_t end) {
    float* __restrict a = acc.data();
    const float* __restrict b = x.data();
    for (std::size_t i = begin; i < end; ++i) a[i] += weight * b[i];
  });
}

void scale(std::span<float> x, float factor, Device device) {
  if (device == Device::cuda) {
    require_device(device);
    APIARY_CUDA_CALL(cuda::scale(x.data(), x.size(), factor));
    return;
  }
  detail::parallel_for(x.size(), kParallelMin, 16, [&](std::size_t begin, std::size_t end) {
    float* __restrict a = x.data();
    for (std::size_t i = begin; i < end; ++i) a[i] *= factor;
  });
}

void copy(std::span<float> dst, std::span<const float> src, Device device) {
  detail::check_same_size(dst.size(), src.size(), "copy");
  if (device == Device::cuda) {
    copy_bytes(dst.data(), device, src.data(), device, src.size_bytes());
    return;
  }
  detail::parallel_for(dst.size(), kParallelMin, 16, [&](std::size_t begin, std::size_t end) {
    std::memcpy(dst.data() + begin, src.data() + begin, (end - begin) * sizeof(float));
  });
}

void fill(std::span<float> x, float value, Device device) {
  if (device == Device::cuda) {
    require_device(device);
    APIARY_CUDA_CALL(cuda::fill(x.data(), x.size(), value));
    return;
  }
  detail::parallel_for(x.size(), kParallelMin, 16, [&](std::size_t begin, std::size_t end) {
    std::fill(x.data() + begin, x.data() + end, value);
  });
}

float sum(std::span<const float> x, Device device) {
  if (device == Device::cuda) {
    require_device(device);
    float result = 0.0f;
    APIARY_CUDA_CALL(result = cuda::sum(x.data(), x.size(), false));
    return result;
  }
  return deterministic_sum<false>(x);
}

float sum_squares(std::span<const float> x, Device device) {
  if (device == Device::cuda) {
    require_device(device);
    float result = 0.0f;
    APIARY_CUDA_CALL(result = cuda::sum(x.data(), x.size(), true));
    return result;
  }
  return deterministic_sum<true>(x);
}

}  // namespace apiary::kernels
