#include "kernels/quantize.hpp"

#include "kernels/dispatch.hpp"
#include "kernels/parallel.hpp"

#include <algorithm>
#include <bit>
#include <cfloat>
#include <cmath>
#include <cstring>
#include <vector>

#ifdef __SSE2__
#include <emmintrin.h>
#include <xmmintrin.h>
#endif

namespace apiary::kernels {

static_assert(std::endian::native == std::endian::little,
              "the 8-bit encoding stores fp32 scales little-endian; add byte swaps for BE hosts");

namespace {
constexpr std::size_t kParallelMin = std::size_t{1} << 20;
constexpr std::size_t kLanes = 16;
constexpr std::size_t kScaleBytes = sizeof(float);
constexpr std::size_t kPrefetchFloats = 1024;

void check_block_size(std::size_t block_size) {
  if (block_size == 0) throw std::invalid_argument("quantize: block_size must be > 0");
}

[[noreturn]] void throw_non_finite() {
  throw std::invalid_argument("quantize: input contains inf or NaN");
}

// The hot loops below are plain functions over raw pointers with no calls that
// can throw, so GCC vectorizes them (SSE2 baseline, no -ffast-math).

// Round half to even for |v| < 2^22: adding 1.5·2^23 pushes the fraction out of
// the mantissa under the FPU's round-to-nearest-even (vectorizes without SSE4.1).
inline float round_even(float v) {
  constexpr float kMagic = 12582912.0f;
  return (v + kMagic) - kMagic;
}

inline std::int8_t clamp_code(float r) {
  r = std::min(127.0f, std::max(-127.0f, r));
  return static_cast<std::int8_t>(static_cast<int>(r));
}

inline float decode(std::int8_t code, float absmax) {
  return absmax * (static_cast<float>(code) / 127.0f);
}

#ifdef __SSE2__
// Running max |x| and an inf/NaN probe over 16 floats at a time (SSE2), the one
// scan both absmax_sse2() and encode_and_scan() use. max is exact, so the
// result equals the scalar loop's. Kept in registers when inlined.
struct AbsmaxScan {
  __m128 abs_mask = _mm_castsi128_ps(_mm_set1_epi32(0x7fffffff));
  __m128 max0 = _mm_setzero_ps(), max1 = _mm_setzero_ps();
  __m128 probe0 = _mm_setzero_ps(), probe1 = _mm_setzero_ps();

  // x[0, 16); one prefetch per cache line, 4 KiB ahead, so memory fetches
  // overlap with the compute of the encode pass.
  inline void add16(const float* __restrict x) {
    _mm_prefetch(reinterpret_cast<const char*>(x + kPrefetchFloats), _MM_HINT_T0);
    __m128 a = _mm_loadu_ps(x), b = _mm_loadu_ps(x + 4);
    __m128 c = _mm_loadu_ps(x + 8), d = _mm_loadu_ps(x + 12);
    max0 = _mm_max_ps(max0, _mm_and_ps(a, abs_mask));
    max1 = _mm_max_ps(max1, _mm_and_ps(b, abs_mask));
    max0 = _mm_max_ps(max0, _mm_and_ps(c, abs_mask));
    max1 = _mm_max_ps(max1, _mm_and_ps(d, abs_mask));
    probe0 = _mm_add_ps(probe0, _mm_sub_ps(a, a));  // NaN iff some value is inf/NaN
    probe1 = _mm_add_ps(probe1, _mm_sub_ps(b, b));
    probe0 = _mm_add_ps(probe0, _mm_sub_ps(c, c));
    probe1 = _mm_add_ps(probe1, _mm_sub_ps(d, d));
  }
  // The lanes folded, plus the scalar tail x[0, n); *finite as absmax_of().
  inline float finish(const float* __restrict tail, std::size_t n, bool* finite) const {
    alignas(16) float maxes[4], probes[4];
    _mm_store_ps(maxes, _mm_max_ps(max0, max1));
    _mm_store_ps(probes, _mm_add_ps(probe0, probe1));
    float m = std::max(std::max(maxes[0], maxes[1]), std::max(maxes[2], maxes[3]));
    float probe = (probes[0] + probes[1]) + (probes[2] + probes[3]);
    for (std::size_t i = 0; i < n; ++i) {
      m = std::max(m, std::fabs(tail[i]));
      probe += tail[i] - tail[i];
    }
    *finite = probe == 0.0f && m <= FLT_MAX;
    return m;
  }
};

// absmax_of() for the plain case with explicit SSE2 (GCC's version of the lane
// loop is several times slower).
float absmax_sse2(const float* __restrict x, std::size_t n, bool* finite) {
  AbsmaxScan scan;
  std::size_t i = 0;
  for (; i + 16 <= n; i += 16) scan.add16(x + i);
  return scan.finish(x + i, n - i, finite);
}

// Codes of x[0, 16) at `m` = 127/absmax. cvtps2dq rounds half to even (default
// MXCSR), exactly like round_even(); |x·m| ≤ 127.00002 rounds into [-127, 127],
// so the saturating packs need no clamp: the scalar loop's codes.
inline void encode16(const float* __restrict x, __m128 m, std::int8_t* __restrict codes) {
  __m128i a = _mm_cvtps_epi32(_mm_mul_ps(_mm_loadu_ps(x), m));
  __m128i b = _mm_cvtps_epi32(_mm_mul_ps(_mm_loadu_ps(x + 4), m));
  __m128i c = _mm_cvtps_epi32(_mm_mul_ps(_mm_loadu_ps(x + 8), m));
  __m128i d = _mm_cvtps_epi32(_mm_mul_ps(_mm_loadu_ps(x + 12), m));
  __m128i packed = _mm_packs_epi16(_mm_packs_epi32(a, b), _mm_packs_epi32(c, d));
  _mm_storeu_si128(reinterpret_cast<__m128i*>(codes), packed);
}
#endif

// max |x[i]| (or |x[i] + r[i]| when r is given) with 16 lanes; *finite is false
// when some value is inf or NaN (x − x is NaN exactly then).
float absmax_of(const float* __restrict x, const float* __restrict r, std::size_t n, bool* finite) {
  float lane_max[kLanes] = {};
  float lane_probe[kLanes] = {};
  std::size_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    for (std::size_t j = 0; j < kLanes; ++j) {
      float v = r ? x[i + j] + r[i + j] : x[i + j];
      float a = std::fabs(v);
      lane_max[j] = lane_max[j] > a ? lane_max[j] : a;
      lane_probe[j] += v - v;
    }
  }
  for (std::size_t j = 0; i < n; ++i, ++j) {
    float v = r ? x[i] + r[i] : x[i];
    float a = std::fabs(v);
    lane_max[j] = lane_max[j] > a ? lane_max[j] : a;
    lane_probe[j] += v - v;
  }
  float m = 0.0f, probe = 0.0f;
  for (std::size_t j = 0; j < kLanes; ++j) {
    m = std::max(m, lane_max[j]);
    probe += lane_probe[j];
  }
  *finite = probe == 0.0f && m <= FLT_MAX;
  return m;
}

void encode_block(const float* __restrict x, std::size_t n, float absmax,
                  std::int8_t* __restrict codes) {
  if (absmax > 0.0f && absmax < FLT_MIN) {
    // Subnormal absmax: 127/absmax overflows to inf, so divide instead (rare).
    for (std::size_t i = 0; i < n; ++i) codes[i] = clamp_code(round_even(127.0f * (x[i] / absmax)));
    return;
  }
  const float multiplier = absmax > 0.0f ? 127.0f / absmax : 0.0f;
  std::size_t i = 0;
#ifdef __SSE2__
  // 16 values per iteration, the scalar loop's codes (see encode16).
  const __m128 m = _mm_set1_ps(multiplier);
  for (; i + 16 <= n; i += 16) encode16(x + i, m, codes + i);
#endif
  for (; i < n; ++i) codes[i] = clamp_code(round_even(x[i] * multiplier));
}

#ifdef __SSE2__
// 16 codes → 4 vectors of code/127 (sign-extended int8 → int32 → float ÷ 127,
// the same IEEE operations as decode()).
inline void unit_values(const std::int8_t* codes, __m128 out[4]) {
  const __m128 k127 = _mm_set1_ps(127.0f);
  __m128i bytes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(codes));
  __m128i lo16 = _mm_srai_epi16(_mm_unpacklo_epi8(bytes, bytes), 8);
  __m128i hi16 = _mm_srai_epi16(_mm_unpackhi_epi8(bytes, bytes), 8);
  __m128i words[4] = {_mm_srai_epi32(_mm_unpacklo_epi16(lo16, lo16), 16),
                      _mm_srai_epi32(_mm_unpackhi_epi16(lo16, lo16), 16),
                      _mm_srai_epi32(_mm_unpacklo_epi16(hi16, hi16), 16),
                      _mm_srai_epi32(_mm_unpackhi_epi16(hi16, hi16), 16)};
  for (int k = 0; k < 4; ++k) out[k] = _mm_div_ps(_mm_cvtepi32_ps(words[k]), k127);
}
#endif

void decode_block(const std::int8_t* __restrict codes, std::size_t n, float absmax,
                  float* __restrict out) {
  std::size_t i = 0;
#ifdef __SSE2__
  const __m128 scale = _mm_set1_ps(absmax);
  for (; i + 16 <= n; i += 16) {
    __m128 units[4];
    unit_values(codes + i, units);
    for (int k = 0; k < 4; ++k) _mm_storeu_ps(out + i + 4 * k, _mm_mul_ps(scale, units[k]));
  }
#endif
  for (; i < n; ++i) out[i] = decode(codes[i], absmax);
}

void decode_accumulate_block(const std::int8_t* __restrict codes, std::size_t n, float absmax,
                             float weight, float* __restrict acc) {
  std::size_t i = 0;
#ifdef __SSE2__
  const __m128 scale = _mm_set1_ps(absmax), w = _mm_set1_ps(weight);
  for (; i + 16 <= n; i += 16) {
    __m128 units[4];
    unit_values(codes + i, units);
    for (int k = 0; k < 4; ++k) {
      __m128 value = _mm_mul_ps(scale, units[k]);
      __m128 sum = _mm_add_ps(_mm_loadu_ps(acc + i + 4 * k), _mm_mul_ps(w, value));
      _mm_storeu_ps(acc + i + 4 * k, sum);
    }
  }
#endif
  for (; i < n; ++i) acc[i] += weight * decode(codes[i], absmax);
}

// residual ← (x + residual) − decode(codes)
void update_residual(const float* __restrict x, const std::int8_t* __restrict codes, std::size_t n,
                     float absmax, float* __restrict residual) {
  for (std::size_t i = 0; i < n; ++i) {
    float y = x[i] + residual[i];
    residual[i] = y - decode(codes[i], absmax);
  }
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
template <typename Byte, typename Fn>
void for_blocks(std::size_t begin, std::size_t end, std::size_t block_size, Byte* base, Fn fn) {
  for (std::size_t first = begin; first < end; first += block_size) {
    std::size_t count = std::min(block_size, end - first);
    fn(first, count, base + (first / block_size) * (block_size + kScaleBytes));
  }
}

#ifdef __SSE2__
// Encodes block x[0, n) with `absmax` and, in the same loop, scans the next
// block next[0, n) for its absmax: the next block's memory loads overlap this
// block's arithmetic. Codes and absmax are exactly those of encode_block() and
// absmax_sse2() (max is exact; cvtps2dq rounds half to even).
float encode_and_scan(const float* __restrict x, std::size_t n, float absmax,
                      std::int8_t* __restrict codes, const float* __restrict next,
                      bool* next_finite) {
  const float multiplier = absmax > 0.0f ? 127.0f / absmax : 0.0f;
  const __m128 m = _mm_set1_ps(multiplier);
  AbsmaxScan scan;
  std::size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    scan.add16(next + i);
    encode16(x + i, m, codes + i);
  }
  for (std::size_t j = i; j < n; ++j) codes[j] = clamp_code(round_even(x[j] * multiplier));
  return scan.finish(next + i, n - i, next_finite);
}

// Quantizes `count` values starting at a block boundary into `out` (the
// encoding of that first block), pipelining each block's encode with the next
// block's absmax scan.
void quantize_chunk_pipelined(const float* x, std::size_t count, std::size_t block_size,
                              std::byte* out) {
  const std::size_t blocks = (count + block_size - 1) / block_size;
  bool finite = true;
  float absmax = absmax_sse2(x, std::min(block_size, count), &finite);
  for (std::size_t b = 0; b < blocks; ++b) {
    if (!finite) throw_non_finite();
    const float* src = x + b * block_size;
    const std::size_t n = std::min(block_size, count - b * block_size);
    std::byte* enc = out + b * (block_size + kScaleBytes);
    std::memcpy(enc, &absmax, kScaleBytes);
    auto* codes = reinterpret_cast<std::int8_t*>(enc + kScaleBytes);
    const std::size_t next_n =
        b + 1 < blocks ? std::min(block_size, count - (b + 1) * block_size) : 0;
    float next_absmax = 0.0f;
    bool next_finite = true;
    const bool tiny = absmax > 0.0f && absmax < FLT_MIN;
    if (next_n == n && !tiny) {
      next_absmax = encode_and_scan(src, n, absmax, codes, src + n, &next_finite);
    } else {
      encode_block(src, n, absmax, codes);
      if (next_n > 0) next_absmax = absmax_sse2(src + n, next_n, &next_finite);
    }
    absmax = next_absmax;
    finite = next_finite;
  }
}
#endif

// Encodes x (+ residual, updated, when given) into out.
void quantize_cpu(std::span<const float> x, float* residual, std::span<std::byte> out,
                  std::size_t block_size) {
#ifdef __SSE2__
  if (residual == nullptr) {
    detail::parallel_for(
        x.size(), kParallelMin, block_size, [&](std::size_t begin, std::size_t end) {
          quantize_chunk_pipelined(x.data() + begin, end - begin, block_size,
                                   out.data() + (begin / block_size) * (block_size + kScaleBytes));
        });
    return;
  }
#endif
  detail::parallel_for(x.size(), kParallelMin, block_size, [&](std::size_t begin, std::size_t end) {
    // Block-sized scratch for x + residual, so encoding reads one array.
    std::vector<float> sum(residual ? std::min(block_size, end - begin) : 0);
    for_blocks(
        begin, end, block_size, out.data(), [&](std::size_t first, std::size_t n, std::byte* enc) {
          const float* src = x.data() + first;
          float* res = residual ? residual + first : nullptr;
          bool finite = true;
#ifdef __SSE2__
          float absmax = res ? absmax_of(src, res, n, &finite) : absmax_sse2(src, n, &finite);
#else
                 float absmax = absmax_of(src, res, n, &finite);
#endif
          if (!finite) throw_non_finite();
          std::memcpy(enc, &absmax, kScaleBytes);
          auto* codes = reinterpret_cast<std::int8_t*>(enc + kScaleBytes);
          if (res) {
            for (std::size_t i = 0; i < n; ++i) sum[i] = src[i] + res[i];
            encode_block(sum.data(), n, absmax, codes);
            update_residual(src, codes, n, absmax, res);
          } else {
            encode_block(src, n, absmax, codes);
          }
        });
  });
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
  quantize_cpu(x, nullptr, out, block_size);
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
  quantize_cpu(x, residual.data(), out, block_size);
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
  detail::parallel_for(
      out.size(), kParallelMin, block_size, [&](std::size_t begin, std::size_t end) {
        for_blocks(begin, end, block_size, in.data(),
                   [&](std::size_t first, std::size_t n, const std::byte* enc) {
                     decode_block(reinterpret_cast<const std::int8_t*>(enc + kScaleBytes), n,
                                  read_scale(enc), out.data() + first);
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
  detail::parallel_for(acc.size(), kParallelMin, block_size,
                       [&](std::size_t begin, std::size_t end) {
                         for_blocks(begin, end, block_size, in.data(),
                                    [&](std::size_t first, std::size_t n, const std::byte* enc) {
                                      decode_accumulate_block(
                                          reinterpret_cast<const std::int8_t*>(enc + kScaleBytes),
                                          n, read_scale(enc), weight, acc.data() + first);
                                    });
                       });
}

}  // namespace apiary::kernels
