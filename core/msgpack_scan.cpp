#include "core/msgpack_scan.hpp"

#include "core/codec.hpp"

#include <algorithm>
#include <array>
#include <cstdint>
#include <string>

namespace apiary::codec {
namespace {

// The header of one encoded value: how many bytes it takes before its
// payload, how many payload bytes follow, and how many child values.
struct Head {
  std::size_t header = 1;
  std::uint64_t payload = 0;
  std::uint64_t children = 0;
};

class Cursor {
 public:
  explicit Cursor(ByteSpan bytes) : bytes_(bytes) {}

  std::size_t left() const noexcept { return bytes_.size() - offset_; }

  std::uint64_t big_endian(std::size_t at, std::size_t width) const {
    if (at + width > left()) fail("message", "truncated");
    std::uint64_t value = 0;
    for (std::size_t i = 0; i < width; ++i) value = (value << 8) | bytes_[offset_ + at + i];
    return value;
  }

  // Reads the header at the cursor (without moving it).
  Head head() const {
    const std::uint8_t tag = bytes_[offset_];
    if (tag <= 0x7f || tag >= 0xe0) return {};           // fixint
    if (tag <= 0x8f) return {1, 0, 2u * (tag & 0x0fu)};  // fixmap
    if (tag <= 0x9f) return {1, 0, tag & 0x0fu};         // fixarray
    if (tag <= 0xbf) return {1, tag & 0x1fu, 0};         // fixstr
    switch (tag) {
      case 0xc0:
      case 0xc2:
      case 0xc3:
        return {};  // nil, bool
      case 0xc4:
      case 0xd9:
        return {2, big_endian(1, 1), 0};  // bin8, str8
      case 0xc5:
      case 0xda:
        return {3, big_endian(1, 2), 0};  // bin16, str16
      case 0xc6:
      case 0xdb:
        return {5, big_endian(1, 4), 0};  // bin32, str32
      case 0xc7:
        return {3, big_endian(1, 1), 0};  // ext8 (+type)
      case 0xc8:
        return {4, big_endian(1, 2), 0};  // ext16
      case 0xc9:
        return {6, big_endian(1, 4), 0};  // ext32
      case 0xca:
        return {1, 4, 0};  // float32
      case 0xcb:
        return {1, 8, 0};  // float64
      case 0xcc:
      case 0xd0:
        return {1, 1, 0};  // (u)int8
      case 0xcd:
      case 0xd1:
        return {1, 2, 0};
      case 0xce:
      case 0xd2:
        return {1, 4, 0};
      case 0xcf:
      case 0xd3:
        return {1, 8, 0};
      case 0xd4:
        return {2, 1, 0};  // fixext1..16 (+type)
      case 0xd5:
        return {2, 2, 0};
      case 0xd6:
        return {2, 4, 0};
      case 0xd7:
        return {2, 8, 0};
      case 0xd8:
        return {2, 16, 0};
      case 0xdc:
        return {3, 0, big_endian(1, 2)};  // array16
      case 0xdd:
        return {5, 0, big_endian(1, 4)};  // array32
      case 0xde:
        return {3, 0, 2 * big_endian(1, 2)};  // map16
      case 0xdf:
        return {5, 0, 2 * big_endian(1, 4)};  // map32
      default:
        fail("message", "malformed msgpack (reserved type byte 0xc1)");
    }
  }

  bool single_byte_scalar() const noexcept {
    const std::uint8_t tag = bytes_[offset_];
    return tag <= 0x7f || tag >= 0xe0 || tag == 0xc0 || tag == 0xc2 || tag == 0xc3;
  }

  void skip(std::uint64_t count) {
    if (count > left()) fail("message", "truncated");
    offset_ += static_cast<std::size_t>(count);
  }

 private:
  ByteSpan bytes_;
  std::size_t offset_ = 0;
};

}  // namespace

std::size_t scan_objects(ByteSpan bytes, const ScanLimits& limits) {
  Cursor cursor(bytes);
  // Children still to read at each open container; the root is one "child".
  // On the stack: the scan runs on every message, so it allocates nothing.
  std::array<std::uint64_t, kMaxScanDepth + 2> open{};
  std::size_t depth = 1;
  open[0] = 1;
  const std::size_t max_depth = std::min(limits.max_depth, kMaxScanDepth);
  std::size_t objects = 1;
  while (depth > 0) {
    if (open[depth - 1] == 0) {
      --depth;
      continue;
    }
    --open[depth - 1];
    if (cursor.left() == 0) fail("message", "truncated");
    // Scalars without payload (fixint, nil, bool) are most elements: one byte.
    if (cursor.single_byte_scalar()) {
      cursor.skip(1);
      continue;
    }
    const Head head = cursor.head();
    cursor.skip(head.header + head.payload);
    if (head.children == 0) continue;
    // Each child takes at least one byte: a larger claim is a lie about the
    // message, refused before anything is sized from it.
    if (head.children > cursor.left()) {
      fail("message", "a container claims " + std::to_string(head.children) +
                          " elements but only " + std::to_string(cursor.left()) + " bytes follow");
    }
    objects += static_cast<std::size_t>(head.children);
    if (objects > limits.max_objects) {
      fail("message", "more than " + std::to_string(limits.max_objects) + " objects");
    }
    // msgpack-c applies the exact depth rule; this only keeps the walk bounded.
    if (depth > max_depth) fail("message", "nesting too deep");
    open[depth++] = head.children;
  }
  return objects;
}

}  // namespace apiary::codec
