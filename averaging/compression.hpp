#pragma once
// Wire codecs for averaged tensors. Reduction always happens in fp32: a codec
// only changes how a chunk travels. Codecs are chosen per tensor
// (CompressionPolicy): tensors smaller than a threshold stay uncompressed, since
// their headers and precision loss cost more than the bytes saved.
//
// Layouts (little-endian):
//   none        count × fp32
//   fp16        count × IEEE binary16 (round to nearest even, saturating to ±65504)
//   bf16        count × bfloat16 (round to nearest even)
//   blockwise8  per block of 4096 values: fp32 absmax, then int8 codes
//               (kernels/quantize.hpp: code = round(127·x/absmax))
// The conversions themselves are kernels/ (convert.hpp, quantize.hpp, reduce.hpp).
// Aligned payloads (the chunk framing keeps them so) are read in place;
// misaligned ones are copied once first.
//
// Error feedback: encode_with_feedback() adds the residual of the previous
// round before encoding and stores the new residual (x − decode(encode(x))),
// so quantisation error is carried over instead of lost.
//
// Errors: decode() throws apiary::Error{bad_message} when the payload size does
// not match the element count or is otherwise invalid (untrusted input);
// encode() throws apiary::Error{invalid_argument} for inputs the codec cannot
// represent (8-bit: non-finite values).
#include "core/bytes.hpp"

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

namespace apiary::averaging {

enum class Codec : std::uint8_t { none = 0, fp16 = 1, bf16 = 2, blockwise8 = 3 };

constexpr std::size_t blockwise8_block = 4096;

std::string_view codec_name(Codec codec) noexcept;
// nullopt for an unknown name; accepts "none", "fp16", "bf16", "8bit"/"blockwise8".
std::optional<Codec> parse_codec(std::string_view name) noexcept;
// nullopt for a byte that names no codec (untrusted input).
std::optional<Codec> codec_from_byte(std::uint8_t value) noexcept;
bool is_lossy(Codec codec) noexcept;
// Largest error one encode→decode of a value |x| ≤ absmax can add: fp16
// 2^-11·absmax (round to nearest, normal range), bf16 2^-8·absmax, 8-bit
// absmax/254 (half a code step of its block, whose absmax ≤ absmax); 0 for none.
// A butterfly round encodes twice (sender → reducer, average → everyone), so
// a weighted mean is within 2× this of the exact one (plus fp32 rounding).
double codec_error_bound(Codec codec, double absmax) noexcept;

std::size_t encoded_size(Codec codec, std::size_t count) noexcept;

// `out` must hold exactly encoded_size(codec, in.size()) bytes.
void encode(Codec codec, std::span<const float> in, MutableByteSpan out);
// Appends the encoding of `in` to `out`.
void encode_append(Codec codec, std::span<const float> in, Bytes& out);
// `in` must hold exactly encoded_size(codec, out.size()) bytes.
void decode(Codec codec, ByteSpan in, std::span<float> out);
// acc[i] += weight · decode(in)[i], without a temporary for Codec::none.
void decode_accumulate(Codec codec, ByteSpan in, float weight, std::span<float> acc);

// values + residual is encoded and appended to `out`; residual becomes the
// part of it the encoding lost. For a lossless codec residual is left at 0.
void encode_with_feedback(Codec codec, std::span<const float> values, std::span<float> residual,
                          Bytes& out);

struct CompressionPolicy {
  Codec codec = Codec::none;
  // Tensors with fewer elements than this travel uncompressed.
  std::size_t min_compressed_elements = 65536;
  // Per-tensor override (index → codec); empty means "use codec".
  std::vector<std::optional<Codec>> per_tensor;
  bool error_feedback = false;

  Codec codec_for(std::size_t tensor_index, std::size_t tensor_elements) const;
};

}  // namespace apiary::averaging

namespace apiary::averaging {
// Cheap structural check of an untrusted payload beyond its size (8-bit: every
// block scale finite and ≥ 0). Throws Error{bad_message}.
void validate_payload(Codec codec, ByteSpan payload, std::size_t count);
}  // namespace apiary::averaging
