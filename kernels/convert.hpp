#pragma once
// fp32 ↔ fp16 (IEEE binary16) and fp32 ↔ bf16 conversion, bits stored in uint16_t.
//
// Rounding is round-to-nearest-even. Infinities stay infinities and NaNs stay
// (quiet) NaNs with their sign. FINITE values beyond the target range do NOT
// become infinity: they clamp to the largest finite value (±65504 for fp16,
// ±3.3895314e38 for bf16), so an overflowing gradient stays finite on the wire.
// fp16 subnormals are produced and read exactly (RNE at 2^-24).
// Errors: std::invalid_argument on size mismatch.
#include "kernels/device.hpp"

#include <cstddef>
#include <cstdint>
#include <span>

namespace apiary::kernels {

std::uint16_t float_to_half(float value) noexcept;
float half_to_float(std::uint16_t bits) noexcept;
std::uint16_t float_to_bfloat16(float value) noexcept;
float bfloat16_to_float(std::uint16_t bits) noexcept;

void to_fp16(std::span<const float> src, std::span<std::uint16_t> dst, Device device = Device::cpu);
void from_fp16(std::span<const std::uint16_t> src, std::span<float> dst,
               Device device = Device::cpu);
void to_bf16(std::span<const float> src, std::span<std::uint16_t> dst, Device device = Device::cpu);
void from_bf16(std::span<const std::uint16_t> src, std::span<float> dst,
               Device device = Device::cpu);

}  // namespace apiary::kernels
