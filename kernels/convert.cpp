#include "kernels/convert.hpp"

#include "kernels/dispatch.hpp"
#include "kernels/parallel.hpp"

#include <bit>

#ifdef __SSE2__
#include <emmintrin.h>
#endif

namespace apiary::kernels {

namespace {
constexpr std::size_t kParallelMin = std::size_t{1} << 20;
}

namespace {
// Branch-free so the span loops vectorize (selects instead of jumps). All
// magnitudes are < 2^31, so signed compares (native in SSE2) are safe.
inline std::uint16_t half_bits(float value) {
  const std::int32_t f = std::bit_cast<std::int32_t>(value);
  const std::int32_t sign = (f >> 16) & 0x8000;
  const std::int32_t a = f & 0x7fffffff;
  // Normal: rebias the exponent (127 → 15), round the 13 dropped bits to nearest even.
  const std::int32_t normal = (a - 0x38000000 + 0xfff + ((a >> 13) & 1)) >> 13;
  // Below 2^-14: fp16 subnormal or zero. Adding 0.5 (ulp 2^-24, the fp16
  // subnormal step) makes the FPU round to the nearest step, ties to even.
  const float shifted = std::bit_cast<float>(a) + 0.5f;
  const std::int32_t subnormal = std::bit_cast<std::int32_t>(shifted) - 0x3f000000;
  std::int32_t h = a < 0x38800000 ? subnormal : normal;
  h = a >= 0x477fe000 ? 0x7bff : h;  // finite beyond 65504 (and 65504): clamp
  h = a == 0x7f800000 ? 0x7c00 : h;  // ±inf
  h = a > 0x7f800000 ? (0x7e00 | ((a >> 13) & 0x3ff)) : h;  // NaN: quiet, keep payload top
  return static_cast<std::uint16_t>(sign | h);
}

inline float half_value(std::uint16_t bits) {
  const std::int32_t h = bits;
  const std::int32_t sign = (h & 0x8000) << 16;
  const std::int32_t exponent = (h >> 10) & 0x1f;
  const std::int32_t mantissa = h & 0x3ff;
  const std::int32_t normal = ((exponent + 112) << 23) | (mantissa << 13);
  const std::int32_t special = 0x7f800000 | (mantissa << 13);  // inf / NaN
  // Zero / subnormal: mantissa · 2^-24, exact in fp32.
  const std::int32_t subnormal =
      std::bit_cast<std::int32_t>(static_cast<float>(mantissa) * 0x1p-24f);
  std::int32_t r = exponent == 0 ? subnormal : normal;
  r = exponent == 0x1f ? special : r;
  return std::bit_cast<float>(sign | r);
}

#ifdef __SSE2__
inline __m128i select(__m128i mask, __m128i if_true, __m128i if_false) {
  return _mm_or_si128(_mm_and_si128(mask, if_true), _mm_andnot_si128(mask, if_false));
}

// half_bits() for 4 floats, same operations; result in the low 16 bits of each lane.
inline __m128i half_bits4(__m128 value) {
  const __m128i f = _mm_castps_si128(value);
  const __m128i sign = _mm_and_si128(_mm_srli_epi32(f, 16), _mm_set1_epi32(0x8000));
  const __m128i a = _mm_and_si128(f, _mm_set1_epi32(0x7fffffff));
  const __m128i odd = _mm_and_si128(_mm_srli_epi32(a, 13), _mm_set1_epi32(1));
  const __m128i normal =
      _mm_srai_epi32(_mm_add_epi32(_mm_add_epi32(a, _mm_set1_epi32(0xfff - 0x38000000)), odd), 13);
  const __m128 shifted = _mm_add_ps(_mm_castsi128_ps(a), _mm_set1_ps(0.5f));
  const __m128i subnormal = _mm_sub_epi32(_mm_castps_si128(shifted), _mm_set1_epi32(0x3f000000));
  __m128i h = select(_mm_cmplt_epi32(a, _mm_set1_epi32(0x38800000)), subnormal, normal);
  h = select(_mm_cmpgt_epi32(a, _mm_set1_epi32(0x477fdfff)), _mm_set1_epi32(0x7bff), h);
  h = select(_mm_cmpeq_epi32(a, _mm_set1_epi32(0x7f800000)), _mm_set1_epi32(0x7c00), h);
  const __m128i nan = _mm_or_si128(_mm_set1_epi32(0x7e00),
                                   _mm_and_si128(_mm_srli_epi32(a, 13), _mm_set1_epi32(0x3ff)));
  h = select(_mm_cmpgt_epi32(a, _mm_set1_epi32(0x7f800000)), nan, h);
  return _mm_or_si128(h, sign);
}

// Packs the low 16 bits of 2×4 lanes (SSE2 has only signed saturation: sign-
// extend first so the bit patterns pass through unchanged).
inline __m128i pack_low16(__m128i lo, __m128i hi) {
  lo = _mm_srai_epi32(_mm_slli_epi32(lo, 16), 16);
  hi = _mm_srai_epi32(_mm_slli_epi32(hi, 16), 16);
  return _mm_packs_epi32(lo, hi);
}

// half_value() for 4 halves given zero-extended in 32-bit lanes.
inline __m128 half_value4(__m128i h) {
  const __m128i sign = _mm_slli_epi32(_mm_and_si128(h, _mm_set1_epi32(0x8000)), 16);
  const __m128i exponent = _mm_and_si128(_mm_srli_epi32(h, 10), _mm_set1_epi32(0x1f));
  const __m128i mantissa = _mm_and_si128(h, _mm_set1_epi32(0x3ff));
  const __m128i normal = _mm_add_epi32(_mm_slli_epi32(_mm_and_si128(h, _mm_set1_epi32(0x7fff)), 13),
                                       _mm_set1_epi32(112 << 23));
  const __m128i special = _mm_or_si128(_mm_set1_epi32(0x7f800000), _mm_slli_epi32(mantissa, 13));
  const __m128i subnormal =
      _mm_castps_si128(_mm_mul_ps(_mm_cvtepi32_ps(mantissa), _mm_set1_ps(0x1p-24f)));
  __m128i r = select(_mm_cmpeq_epi32(exponent, _mm_setzero_si128()), subnormal, normal);
  r = select(_mm_cmpeq_epi32(exponent, _mm_set1_epi32(0x1f)), special, r);
  return _mm_castsi128_ps(_mm_or_si128(r, sign));
}
#endif
}  // namespace

std::uint16_t float_to_half(float value) noexcept {
  return half_bits(value);
}
float half_to_float(std::uint16_t bits) noexcept {
  return half_value(bits);
}

std::uint16_t float_to_bfloat16(float value) noexcept {
  const std::uint32_t f = std::bit_cast<std::uint32_t>(value);
  const std::uint32_t a = f & 0x7fffffffu;
  if (a > 0x7f800000u) return static_cast<std::uint16_t>((f >> 16) | 0x0040u);  // quiet NaN
  if (a == 0x7f800000u) return static_cast<std::uint16_t>(f >> 16);             // ±inf
  const std::uint32_t odd = (f >> 16) & 1u;
  std::uint32_t rounded = (f + 0x7fffu + odd) >> 16;
  if ((rounded & 0x7fffu) == 0x7f80u) rounded -= 1;  // finite overflow: clamp to max finite
  return static_cast<std::uint16_t>(rounded);
}

float bfloat16_to_float(std::uint16_t bits) noexcept {
  return std::bit_cast<float>(static_cast<std::uint32_t>(bits) << 16);
}

void to_fp16(std::span<const float> src, std::span<std::uint16_t> dst, Device device) {
  detail::check_same_size(src.size(), dst.size(), "to_fp16");
  if (device == Device::cuda) {
    require_device(device);
    APIARY_CUDA_CALL(cuda::to_fp16(src.data(), dst.data(), src.size()));
    return;
  }
  detail::parallel_for(src.size(), kParallelMin, 64, [&](std::size_t begin, std::size_t end) {
    const float* __restrict in = src.data();
    std::uint16_t* __restrict out = dst.data();
    std::size_t i = begin;
#ifdef __SSE2__
    for (; i + 8 <= end; i += 8) {
      __m128i packed =
          pack_low16(half_bits4(_mm_loadu_ps(in + i)), half_bits4(_mm_loadu_ps(in + i + 4)));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(out + i), packed);
    }
#endif
    for (; i < end; ++i) out[i] = half_bits(in[i]);
  });
}

void from_fp16(std::span<const std::uint16_t> src, std::span<float> dst, Device device) {
  detail::check_same_size(src.size(), dst.size(), "from_fp16");
  if (device == Device::cuda) {
    require_device(device);
    APIARY_CUDA_CALL(cuda::from_fp16(src.data(), dst.data(), src.size()));
    return;
  }
  detail::parallel_for(src.size(), kParallelMin, 64, [&](std::size_t begin, std::size_t end) {
    const std::uint16_t* __restrict in = src.data();
    float* __restrict out = dst.data();
    std::size_t i = begin;
#ifdef __SSE2__
    for (; i + 8 <= end; i += 8) {
      __m128i halves = _mm_loadu_si128(reinterpret_cast<const __m128i*>(in + i));
      _mm_storeu_ps(out + i, half_value4(_mm_unpacklo_epi16(halves, _mm_setzero_si128())));
      _mm_storeu_ps(out + i + 4, half_value4(_mm_unpackhi_epi16(halves, _mm_setzero_si128())));
    }
#endif
    for (; i < end; ++i) out[i] = half_value(in[i]);
  });
}

void to_bf16(std::span<const float> src, std::span<std::uint16_t> dst, Device device) {
  detail::check_same_size(src.size(), dst.size(), "to_bf16");
  if (device == Device::cuda) {
    require_device(device);
    APIARY_CUDA_CALL(cuda::to_bf16(src.data(), dst.data(), src.size()));
    return;
  }
  detail::parallel_for(src.size(), kParallelMin, 64, [&](std::size_t begin, std::size_t end) {
    for (std::size_t i = begin; i < end; ++i) dst[i] = float_to_bfloat16(src[i]);
  });
}

void from_bf16(std::span<const std::uint16_t> src, std::span<float> dst, Device device) {
  detail::check_same_size(src.size(), dst.size(), "from_bf16");
  if (device == Device::cuda) {
    require_device(device);
    APIARY_CUDA_CALL(cuda::from_bf16(src.data(), dst.data(), src.size()));
    return;
  }
  detail::parallel_for(src.size(), kParallelMin, 64, [&](std::size_t begin, std::size_t end) {
    for (std::size_t i = begin; i < end; ++i) dst[i] = bfloat16_to_float(src[i]);
  });
}

}  // namespace apiary::kernels
