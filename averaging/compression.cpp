#include "averaging/compression.hpp"

#include "core/error.hpp"
#include "kernels/convert.hpp"
#include "kernels/quantize.hpp"
#include "kernels/reduce.hpp"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <vector>

namespace apiary::averaging {
namespace {

static_assert(std::endian::native == std::endian::little, "wire layouts assume little-endian");

void check_size(Codec codec, std::size_t bytes, std::size_t count) {
  if (bytes != encoded_size(codec, count))
    throw Error(Errc::bad_message, std::string(codec_name(codec)) + " payload of " +
                                       std::to_string(bytes) + " bytes for " +
                                       std::to_string(count) + " elements");
}

// Payload bytes viewed as the element type they carry: in place when aligned
// (the chunk framing keeps payloads at aligned offsets), else copied once.
template <typename T>
class AlignedView {
 public:
  explicit AlignedView(ByteSpan in) {
    if (reinterpret_cast<std::uintptr_t>(in.data()) % alignof(T) == 0) {
      view_ = {reinterpret_cast<const T*>(in.data()), in.size() / sizeof(T)};
    } else {
      copy_.resize(in.size() / sizeof(T));
      if (!copy_.empty()) std::memcpy(copy_.data(), in.data(), copy_.size() * sizeof(T));
      view_ = copy_;
    }
  }
  std::span<const T> get() const noexcept { return view_; }

 private:
  std::vector<T> copy_;
  std::span<const T> view_;
};
// Converts into `out` in place when it is 2-byte aligned, else through a copy.
template <typename Convert>
void encode_u16(std::span<const float> in, MutableByteSpan out, Convert convert) {
  if (reinterpret_cast<std::uintptr_t>(out.data()) % alignof(std::uint16_t) == 0) {
    convert(in, std::span<std::uint16_t>(reinterpret_cast<std::uint16_t*>(out.data()), in.size()));
    return;
  }
  std::vector<std::uint16_t> converted(in.size());
  convert(in, std::span<std::uint16_t>(converted));
  if (!converted.empty()) std::memcpy(out.data(), converted.data(), out.size());
}

std::span<const std::byte> as_std_bytes(ByteSpan in) {
  return {reinterpret_cast<const std::byte*>(in.data()), in.size()};
}

}  // namespace

std::string_view codec_name(Codec codec) noexcept {
  switch (codec) {
    case Codec::none:
      return "none";
    case Codec::fp16:
      return "fp16";
    case Codec::bf16:
      return "bf16";
    case Codec::blockwise8:
      return "8bit";
  }
  return "unknown";
}

std::optional<Codec> parse_codec(std::string_view name) noexcept {
  if (name == "none" || name == "fp32") return Codec::none;
  if (name == "fp16") return Codec::fp16;
  if (name == "bf16") return Codec::bf16;
  if (name == "8bit" || name == "blockwise8") return Codec::blockwise8;
  return std::nullopt;
}

std::optional<Codec> codec_from_byte(std::uint8_t value) noexcept {
  if (value > static_cast<std::uint8_t>(Codec::blockwise8)) return std::nullopt;
  return static_cast<Codec>(value);
}

bool is_lossy(Codec codec) noexcept {
  return codec != Codec::none;
}

double codec_error_bound(Codec codec, double absmax) noexcept {
  switch (codec) {
    case Codec::none:
      return 0;
    case Codec::fp16:
      return absmax / 2048.0;
    case Codec::bf16:
      return absmax / 256.0;
    case Codec::blockwise8:
      return absmax / 254.0;
  }
  return absmax;
}

std::size_t encoded_size(Codec codec, std::size_t count) noexcept {
  switch (codec) {
    case Codec::none:
      return count * sizeof(float);
    case Codec::fp16:
    case Codec::bf16:
      return count * 2;
    case Codec::blockwise8:
      return kernels::quantized_size(count, blockwise8_block);
  }
  return 0;
}

void encode(Codec codec, std::span<const float> in, MutableByteSpan out) {
  if (out.size() != encoded_size(codec, in.size()))
    throw Error(Errc::invalid_argument, "encode: output buffer has the wrong size");
  try {
    switch (codec) {
      case Codec::none:
        if (!in.empty()) std::memcpy(out.data(), in.data(), in.size_bytes());
        return;
      case Codec::fp16:
        encode_u16(in, out, [](auto src, auto dst) { kernels::to_fp16(src, dst); });
        return;
      case Codec::bf16:
        encode_u16(in, out, [](auto src, auto dst) { kernels::to_bf16(src, dst); });
        return;
      case Codec::blockwise8:
        kernels::quantize_blockwise(in, {reinterpret_cast<std::byte*>(out.data()), out.size()},
                                    blockwise8_block);
        return;
    }
  } catch (const std::invalid_argument& e) {
    throw Error(Errc::invalid_argument, std::string("encode: ") + e.what());
  }
  throw Error(Errc::invalid_argument, "encode: unknown codec");
}

void encode_append(Codec codec, std::span<const float> in, Bytes& out) {
  if (codec == Codec::none) {  // one pass: no zero-fill before the copy
    const auto* bytes = reinterpret_cast<const std::uint8_t*>(in.data());
    out.insert(out.end(), bytes, bytes + in.size_bytes());
    return;
  }
  const std::size_t start = out.size();
  out.resize(start + encoded_size(codec, in.size()));
  encode(codec, in, MutableByteSpan(out).subspan(start));
}

void decode(Codec codec, ByteSpan in, std::span<float> out) {
  check_size(codec, in.size(), out.size());
  try {
    switch (codec) {
      case Codec::none:
        if (!out.empty()) std::memcpy(out.data(), in.data(), in.size());
        return;
      case Codec::fp16:
        kernels::from_fp16(AlignedView<std::uint16_t>(in).get(), out);
        return;
      case Codec::bf16:
        kernels::from_bf16(AlignedView<std::uint16_t>(in).get(), out);
        return;
      case Codec::blockwise8:
        kernels::dequantize_blockwise(as_std_bytes(in), out, blockwise8_block);
        return;
    }
  } catch (const std::invalid_argument& e) {
    throw Error(Errc::bad_message, std::string("decode: ") + e.what());
  }
  throw Error(Errc::bad_message, "decode: unknown codec");
}

void decode_accumulate(Codec codec, ByteSpan in, float weight, std::span<float> acc) {
  check_size(codec, in.size(), acc.size());
  try {
    switch (codec) {
      case Codec::none:
        kernels::weighted_accumulate(acc, AlignedView<float>(in).get(), weight);
        return;
      case Codec::fp16:
      case Codec::bf16: {
        std::vector<float> decoded(acc.size());
        decode(codec, in, decoded);
        kernels::weighted_accumulate(acc, decoded, weight);
        return;
      }
      case Codec::blockwise8:
        kernels::dequantize_accumulate(as_std_bytes(in), acc, weight, blockwise8_block);
        return;
    }
  } catch (const std::invalid_argument& e) {
    throw Error(Errc::bad_message, std::string("decode: ") + e.what());
  }
  throw Error(Errc::bad_message, "decode: unknown codec");
}

void encode_with_feedback(Codec codec, std::span<const float> values, std::span<float> residual,
                          Bytes& out) {
  if (residual.size() != values.size())
    throw Error(Errc::invalid_argument, "encode_with_feedback: residual size mismatch");
  if (!is_lossy(codec)) {
    std::fill(residual.begin(), residual.end(), 0.0f);
    encode_append(codec, values, out);
    return;
  }
  // residual := values + residual (what we want to transmit) ...
  kernels::weighted_accumulate(residual, values, 1.0f);
  const std::size_t start = out.size();
  encode_append(codec, residual, out);
  // ... then residual := wanted − transmitted.
  decode_accumulate(codec, ByteSpan(out).subspan(start), -1.0f, residual);
}

Codec CompressionPolicy::codec_for(std::size_t tensor_index, std::size_t tensor_elements) const {
  if (tensor_index < per_tensor.size() && per_tensor[tensor_index])
    return *per_tensor[tensor_index];
  return tensor_elements < min_compressed_elements ? Codec::none : codec;
}

}  // namespace apiary::averaging

namespace apiary::averaging {
void validate_payload(Codec codec, ByteSpan payload, std::size_t count) {
  check_size(codec, payload.size(), count);
  if (codec != Codec::blockwise8) return;
  for (std::size_t offset = 0; offset < payload.size(); offset += 4 + blockwise8_block) {
    float absmax;
    std::memcpy(&absmax, payload.data() + offset, 4);
    if (!std::isfinite(absmax) || absmax < 0)
      throw Error(Errc::bad_message, "8-bit payload with an invalid block scale");
  }
}
}  // namespace apiary::averaging
