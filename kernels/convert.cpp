#include "kernels/convert.hpp"

#include "kernels/dispatch.hpp"
#include "kernels/parallel.hpp"

#include <bit>

namespace apiary::kernels {

namespace {
constexpr std::size_t kParallelMin = std::size_t{1} << 20;
}

std::uint16_t float_to_half(float value) noexcept {
  const std::uint32_t f = std::bit_cast<std::uint32_t>(value);
  const std::uint32_t sign = (f >> 16) & 0x8000u;
  const std::uint32_t a = f & 0x7fffffffu;
  if (a > 0x7f800000u) {  // NaN: keep it quiet, keep the top payload bits
    return static_cast<std::uint16_t>(sign | 0x7e00u | ((a >> 13) & 0x3ffu));
  }
  if (a == 0x7f800000u) return static_cast<std::uint16_t>(sign | 0x7c00u);  // ±inf
  if (a >= 0x477fe000u) return static_cast<std::uint16_t>(sign | 0x7bffu);  // clamp ±65504
  if (a < 0x38800000u) {
    // Below 2^-14: fp16 subnormal (or zero). Adding 0.5 (ulp 2^-24, the fp16
    // subnormal step) makes the FPU round to the nearest step, ties to even.
    float shifted = std::bit_cast<float>(a) + 0.5f;
    return static_cast<std::uint16_t>(sign | (std::bit_cast<std::uint32_t>(shifted) - 0x3f000000u));
  }
  // Normal: rebias the exponent (127 → 15) and round the 13 dropped bits to nearest even.
  const std::uint32_t odd = (a >> 13) & 1u;
  const std::uint32_t rounded = a - 0x38000000u + 0xfffu + odd;
  return static_cast<std::uint16_t>(sign | (rounded >> 13));
}

float half_to_float(std::uint16_t bits) noexcept {
  const std::uint32_t sign = static_cast<std::uint32_t>(bits & 0x8000u) << 16;
  const std::uint32_t exponent = (bits >> 10) & 0x1fu;
  const std::uint32_t mantissa = bits & 0x3ffu;
  if (exponent == 0x1fu) {  // inf / NaN
    return std::bit_cast<float>(sign | 0x7f800000u | (mantissa << 13));
  }
  if (exponent == 0) {  // zero / subnormal: mantissa · 2^-24, exact in fp32
    float magnitude = static_cast<float>(mantissa) * 0x1p-24f;
    return std::bit_cast<float>(sign | std::bit_cast<std::uint32_t>(magnitude));
  }
  return std::bit_cast<float>(sign | ((exponent + 112u) << 23) | (mantissa << 13));
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
    for (std::size_t i = begin; i < end; ++i) dst[i] = float_to_half(src[i]);
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
    for (std::size_t i = begin; i < end; ++i) dst[i] = half_to_float(src[i]);
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
