#include "kernels/quantize.hpp"

#include "kernels/dispatch.hpp"
#include "kernels/parallel.hpp"

#include <algorithm>
#include <bit>
#include <cfloat>
#include <cmath>
#include <cstring>

namespace apiary::kernels {

static_assert(std::endian::native == std::endian::little,
              "the 8-bit encoding stores fp32 scales little-endian; add byte swaps for BE hosts");

namespace {
constexpr std::size_t kParallelMin = std::size_t{1} << 20;
constexpr std::size_t kLanes = 16;
constexpr std::size_t kScaleBytes = sizeof(float);

void check_block_size(std::size_t block_size) {
  if (block_size == 0) throw std::invalid_argument("quantize: block_size must be > 0");
}

// Round half to even for |v| < 2^22 without libm (vectorizes on plain SSE2):
// adding 1.5·2^23 pushes the fraction out of the mantissa under the FPU's RNE.
inline float round_even(float v) {
  constexpr float kMagic = 12582912.0f;
  return (v + kMagic) - kMagic;
}

// max |x| over the block; throws on inf/NaN (they would poison the whole block).
template <typename Value>
float block_absmax(std::size_t n, Value value) {
  float lane_max[kLanes] = {};
  float lane_probe[kLanes] = {};  // stays 0 unless some x is inf or NaN (x − x = NaN)
  std::size_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    for (std::size_t j = 0; j < kLanes; ++j) {
      float v = value(i + j);
      float a = std::fabs(v);
      lane_max[j] = lane_max[j] > a ? lane_max[j] : a;
      lane_probe[j] += v - v;
    }
  }
  for (std::size_t j = 0; i < n; ++i, ++j) {
    float v = value(i);
    float a = std::fabs(v);
    lane_max[j] = lane_max[j] > a ? lane_max[j] : a;
    lane_probe[j] += v - v;
  }
  float m = 0.0f, probe = 0.0f;
  for (std::size_t j = 0; j < kLanes; ++j) {
    m = std::max(m, lane_max[j]);
    probe += lane_probe[j];
  }
  if (probe != 0.0f || !(m <= FLT_MAX)) {
    throw std::invalid_argument("quantize: input contains inf or NaN");
  }
  return m;
}

inline float code_multiplier(float absmax) {
  return absmax > 0.0f ? 127.0f / absmax : 0.0f;
}

inline std::int8_t clamp_code(float r) {
  r = std::min(127.0f, std::max(-127.0f, r));
  return static_cast<std::int8_t>(static_cast<int>(r));
}

inline std::int8_t encode(float v, float multiplier) {
  return clamp_code(round_even(v * multiplier));
}

// For subnormal absmax, 127/absmax overflows to inf; divide instead (rare, slow path).
inline bool tiny_scale(float absmax) {
  return absmax > 0.0f && absmax < FLT_MIN;
}
inline std::int8_t encode_tiny(float v, float absmax) {
  return clamp_code(round_even(127.0f * (v / absmax)));
}

inline float decode(std::int8_t code, float absmax) {
  return absmax * (static_cast<float>(code) / 127.0f);
}

float read_scale(const std::byte* p) {
  float absmax;
  std::memcpy(&absmax, p, sizeof absmax);
  if (!(absmax >= 0.0f && absmax <= FLT_MAX)) {
    throw std::invalid_argument("dequantize: block scale is negative, inf or NaN");
  }
  return absmax;
}

// Calls fn(first_value, count, encoded_block_ptr) for each block in [begin, end).
template <typename Fn>
void for_blocks(std::size_t begin, std::size_t end, std::size_t block_size, std::byte* base,
                Fn fn) {
  for (std::size_t first = begin; first < end; first += block_size) {
    std::size_t count = std::min(block_size, end - first);
    fn(first, count, base + (first / block_size) * (block_size + kScaleBytes));
  }
}
}  // namespace

std::size_t quantized_block_count(std::size_t values, std::size_t block_size) {
  check_block_size(block_size);
  return (values + block_size - 1) / block_size;
}

std::size_t quantized_size(std::size_t values, std::size_t block_size) {
  return values + kScaleBytes * quantized_block_count(values, block_size);
}

void quantize_blockwise(std::span<const float> x, std::span<std::byte> out, std::size_t block_size,
                        Device device) {
  detail::check_same_size(out.size(), quantized_size(x.size(), block_size), "quantize_blockwise");
  if (device == Device::cuda) {
    require_device(device);
    APIARY_CUDA_CALL(cuda::quantize(x.data(), x.size(), out.data(), block_size, nullptr));
    return;
  }
  detail::parallel_for(x.size(), kParallelMin, block_size, [&](std::size_t begin, std::size_t end) {
    for_blocks(begin, end, block_size, out.data(),
               [&](std::size_t first, std::size_t n, std::byte* enc) {
                 const float* __restrict src = x.data() + first;
                 float absmax = block_absmax(n, [src](std::size_t i) { return src[i]; });
                 std::memcpy(enc, &absmax, kScaleBytes);
                 auto* __restrict codes = reinterpret_cast<std::int8_t*>(enc + kScaleBytes);
                 float multiplier = code_multiplier(absmax);
                 if (tiny_scale(absmax)) {
                   for (std::size_t i = 0; i < n; ++i) codes[i] = encode_tiny(src[i], absmax);
                 } else {
                   for (std::size_t i = 0; i < n; ++i) codes[i] = encode(src[i], multiplier);
                 }
               });
  });
}

void quantize_with_feedback(std::span<const float> x, std::span<float> residual,
                            std::span<std::byte> out, std::size_t block_size, Device device) {
  detail::check_same_size(x.size(), residual.size(), "quantize_with_feedback");
  detail::check_same_size(out.size(), quantized_size(x.size(), block_size),
                          "quantize_with_feedback");
  if (device == Device::cuda) {
    require_device(device);
    APIARY_CUDA_CALL(cuda::quantize(x.data(), x.size(), out.data(), block_size, residual.data()));
    return;
  }
  detail::parallel_for(x.size(), kParallelMin, block_size, [&](std::size_t begin, std::size_t end) {
    for_blocks(
        begin, end, block_size, out.data(), [&](std::size_t first, std::size_t n, std::byte* enc) {
          const float* __restrict src = x.data() + first;
          float* __restrict res = residual.data() + first;
          float absmax = block_absmax(n, [src, res](std::size_t i) { return src[i] + res[i]; });
          std::memcpy(enc, &absmax, kScaleBytes);
          auto* __restrict codes = reinterpret_cast<std::int8_t*>(enc + kScaleBytes);
          float multiplier = code_multiplier(absmax);
          for (std::size_t i = 0; i < n; ++i) {
            float y = src[i] + res[i];
            std::int8_t code = tiny_scale(absmax) ? encode_tiny(y, absmax) : encode(y, multiplier);
            codes[i] = code;
            res[i] = y - decode(code, absmax);
          }
        });
  });
}

void dequantize_blockwise(std::span<const std::byte> in, std::span<float> out,
                          std::size_t block_size, Device device) {
  detail::check_same_size(in.size(), quantized_size(out.size(), block_size),
                          "dequantize_blockwise");
  if (device == Device::cuda) {
    require_device(device);
    APIARY_CUDA_CALL(cuda::dequantize(in.data(), out.data(), out.size(), block_size, 0.0f, false));
    return;
  }
  auto* base = const_cast<std::byte*>(in.data());  // only read below
  detail::parallel_for(out.size(), kParallelMin, block_size,
                       [&](std::size_t begin, std::size_t end) {
                         for_blocks(begin, end, block_size, base,
                                    [&](std::size_t first, std::size_t n, std::byte* enc) {
                                      float absmax = read_scale(enc);
                                      const auto* __restrict codes =
                                          reinterpret_cast<const std::int8_t*>(enc + kScaleBytes);
                                      float* __restrict dst = out.data() + first;
                                      for (std::size_t i = 0; i < n; ++i)
                                        dst[i] = decode(codes[i], absmax);
                                    });
                       });
}

void dequantize_accumulate(std::span<const std::byte> in, std::span<float> acc, float weight,
                           std::size_t block_size, Device device) {
  detail::check_same_size(in.size(), quantized_size(acc.size(), block_size),
                          "dequantize_accumulate");
  if (device == Device::cuda) {
    require_device(device);
    APIARY_CUDA_CALL(cuda::dequantize(in.data(), acc.data(), acc.size(), block_size, weight, true));
    return;
  }
  auto* base = const_cast<std::byte*>(in.data());  // only read below
  detail::parallel_for(acc.size(), kParallelMin, block_size,
                       [&](std::size_t begin, std::size_t end) {
                         for_blocks(begin, end, block_size, base,
                                    [&](std::size_t first, std::size_t n, std::byte* enc) {
                                      float absmax = read_scale(enc);
                                      const auto* __restrict codes =
                                          reinterpret_cast<const std::int8_t*>(enc + kScaleBytes);
                                      float* __restrict dst = acc.data() + first;
                                      for (std::size_t i = 0; i < n; ++i)
                                        dst[i] += weight * decode(codes[i], absmax);
                                    });
                       });
}

}  // namespace apiary::kernels
