#pragma once
// 8-bit blockwise quantization (absmax per block) for compressed averaging.
//
// Encoded layout (streamable: every block is self-contained, so a receiver can
// decode/accumulate any prefix that ends on a block boundary):
//   for each block of `block_size` values (the last one may be shorter):
//     absmax : fp32, little-endian, 4 bytes      (max |x| over the block, finite, ≥ 0)
//     codes  : int8 × len(block)                 (code = round_half_even(x · 127 / absmax))
// encoded_size(n, b) = n + 4 · ceil(n / b).
// Decoding: x̂ = absmax · (code / 127). Codes ±127 decode to exactly ±absmax.
//
// Error bound (tested): |x − x̂| ≤ absmax / 254 + 2⁻²² · absmax per element
// (half a quantization step plus fp32 rounding of the scale computation).
// A block whose values are all equal (constant) round-trips EXACTLY, as does an
// all-zero block.
//
// Error feedback: quantize_with_feedback() encodes y = x + residual and stores
// residual = y − ŷ, so the error is carried into the next round instead of lost.
//
// Errors: std::invalid_argument for size mismatches, block_size == 0, non-finite
// inputs (encode) and invalid encodings — non-finite or negative absmax (decode).
// Decoding is safe on untrusted bytes: any code in [-128, 127] gives a bounded value.
#include "kernels/device.hpp"

#include <cstddef>
#include <cstdint>
#include <span>

namespace apiary::kernels {

inline constexpr std::size_t kDefaultQuantBlock = 4096;

std::size_t quantized_size(std::size_t values, std::size_t block_size = kDefaultQuantBlock);
std::size_t quantized_block_count(std::size_t values, std::size_t block_size = kDefaultQuantBlock);

// out.size() must equal quantized_size(x.size(), block_size).
void quantize_blockwise(std::span<const float> x, std::span<std::byte> out,
                        std::size_t block_size = kDefaultQuantBlock, Device device = Device::cpu);
// out.size() values; in.size() must equal quantized_size(out.size(), block_size).
void dequantize_blockwise(std::span<const std::byte> in, std::span<float> out,
                          std::size_t block_size = kDefaultQuantBlock, Device device = Device::cpu);
// acc[i] += weight · x̂[i] without materialising x̂ (streaming averaging).
void dequantize_accumulate(std::span<const std::byte> in, std::span<float> acc, float weight,
                           std::size_t block_size = kDefaultQuantBlock,
                           Device device = Device::cpu);
// Error feedback: encodes x + residual, then residual ← (x + residual) − decoded.
// residual.size() == x.size(); start with residual all zeros.
void quantize_with_feedback(std::span<const float> x, std::span<float> residual,
                            std::span<std::byte> out, std::size_t block_size = kDefaultQuantBlock,
                            Device device = Device::cpu);

}  // namespace apiary::kernels
