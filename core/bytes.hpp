#pragma once
// Byte buffers: owning (Bytes) and borrowed (ByteSpan), plus hex helpers.
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace apiary {

using Bytes = std::vector<std::uint8_t>;
using ByteSpan = std::span<const std::uint8_t>;
using MutableByteSpan = std::span<std::uint8_t>;

inline ByteSpan as_bytes(std::string_view s) {
  return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}
inline std::string_view as_string_view(ByteSpan b) {
  return {reinterpret_cast<const char*>(b.data()), b.size()};
}

std::string to_hex(ByteSpan bytes);
// nullopt unless `hex` is an even-length string of [0-9a-fA-F].
std::optional<Bytes> from_hex(std::string_view hex);

}  // namespace apiary
