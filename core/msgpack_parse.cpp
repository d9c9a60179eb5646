#include "core/msgpack_parse.hpp"

#include "core/codec.hpp"

#include <algorithm>
#include <bit>
#include <cstdint>
#include <string>

namespace apiary::codec {
namespace {

// A container being filled: where its next element goes and how many remain.
struct OpenContainer {
  msgpack::object* next;
  std::size_t remaining;
};

class ObjectBuilder {
 public:
  ObjectBuilder(ByteSpan bytes, const Limits& limits, msgpack::zone& zone)
      : at_(bytes.data()),
        end_(bytes.data() + bytes.size()),
        limits_(limits),
        max_depth_(std::min(limits.max_depth, kMaxParseDepth)),
        zone_(zone) {}

  msgpack::object build() {
    msgpack::object root;
    open_[0] = {&root, 1};  // the root's slot, not a container
    depth_ = 1;
    while (depth_ > 0) {
      OpenContainer& top = open_[depth_ - 1];
      if (top.remaining == 0) {
        --depth_;
        continue;
      }
      --top.remaining;
      value(*top.next++);
    }
    if (at_ != end_) fail("message", std::to_string(end_ - at_) + " trailing bytes");
    return root;
  }

 private:
  std::size_t left() const noexcept { return static_cast<std::size_t>(end_ - at_); }

  void need(std::uint64_t count) const {
    if (count > left()) fail("message", "truncated");
  }

  // Reads a big-endian unsigned integer of `width` bytes at the cursor.
  std::uint64_t big_endian(std::size_t width) {
    need(width);
    std::uint64_t result = 0;
    for (std::size_t i = 0; i < width; ++i) result = (result << 8) | at_[i];
    at_ += width;
    return result;
  }

  static void positive(msgpack::object& obj, std::uint64_t value) noexcept {
    obj.type = msgpack::type::POSITIVE_INTEGER;
    obj.via.u64 = value;
  }

  // msgpack-c's rule: a signed encoding of a value >= 0 is a positive integer.
  static void signed_integer(msgpack::object& obj, std::int64_t value) noexcept {
    if (value >= 0) return positive(obj, static_cast<std::uint64_t>(value));
    obj.type = msgpack::type::NEGATIVE_INTEGER;
    obj.via.i64 = value;
  }

  std::int64_t signed_big_endian(std::size_t width) {
    const std::uint64_t raw = big_endian(width);
    const unsigned shift = static_cast<unsigned>(64 - 8 * width);
    return static_cast<std::int64_t>(raw << shift) >> shift;  // sign-extends
  }

  void bytes(msgpack::object& obj, msgpack::type::object_type type, std::uint64_t size,
             std::size_t max_size, const char* overflow) {
    need(size);
    if (size > max_size) fail("message", std::string("size limit exceeded (") + overflow + ")");
    obj.type = type;
    // str and bin share one layout in msgpack::object's union.
    obj.via.str.ptr = reinterpret_cast<const char*>(at_);
    obj.via.str.size = static_cast<std::uint32_t>(size);
    at_ += size;
  }

  [[noreturn]] void ext(std::uint64_t data_size) {
    need(data_size + 1);  // the type byte, then the data
    fail("message", "size limit exceeded (ext size overflow)");
  }

  void container(msgpack::object& obj, std::uint64_t count, bool map) {
    if (count > (map ? limits_.max_map : limits_.max_array)) {
      fail("message", map ? "size limit exceeded (map size overflow)"
                          : "size limit exceeded (array size overflow)");
    }
    // A map's entries are key, value pairs of objects (msgpack::object_kv).
    const std::uint64_t slots = map ? 2 * count : count;
    // Each element takes at least one byte: a larger claim is a lie about the
    // message, refused before anything is sized from it.
    if (slots > left()) {
      fail("message", "a container claims " + std::to_string(slots) + " elements but only " +
                          std::to_string(left()) + " bytes follow");
    }
    if (depth_ > max_depth_) fail("message", "nesting too deep");
    objects_ += static_cast<std::size_t>(slots);
    if (objects_ > limits_.max_objects) {
      fail("message", "more than " + std::to_string(limits_.max_objects) + " objects");
    }
    msgpack::object* items = nullptr;
    if (slots > 0) {
      items = static_cast<msgpack::object*>(
          zone_.allocate_align(static_cast<std::size_t>(slots) * sizeof(msgpack::object),
                               MSGPACK_ZONE_ALIGNOF(msgpack::object)));
      open_[depth_++] = {items, static_cast<std::size_t>(slots)};
    }
    if (map) {
      obj.type = msgpack::type::MAP;
      obj.via.map.size = static_cast<std::uint32_t>(count);
      obj.via.map.ptr = reinterpret_cast<msgpack::object_kv*>(items);
    } else {
      obj.type = msgpack::type::ARRAY;
      obj.via.array.size = static_cast<std::uint32_t>(count);
      obj.via.array.ptr = items;
    }
  }

  // Decodes the value at the cursor into `obj`; a container's elements are
  // filled by build()'s loop.
  void value(msgpack::object& obj) {
    need(1);
    const std::uint8_t tag = *at_++;
    if (tag <= 0x7f) return positive(obj, tag);
    if (tag >= 0xe0) return signed_integer(obj, static_cast<std::int8_t>(tag));
    if (tag <= 0x8f) return container(obj, tag & 0x0fu, true);
    if (tag <= 0x9f) return container(obj, tag & 0x0fu, false);
    if (tag <= 0xbf)
      return bytes(obj, msgpack::type::STR, tag & 0x1fu, limits_.max_str, "str size overflow");
    switch (tag) {
      case 0xc0:
        obj.type = msgpack::type::NIL;
        return;
      case 0xc2:
      case 0xc3:
        obj.type = msgpack::type::BOOLEAN;
        obj.via.boolean = tag == 0xc3;
        return;
      case 0xc4:
      case 0xc5:
      case 0xc6:
        return bytes(obj, msgpack::type::BIN, big_endian(std::size_t{1} << (tag - 0xc4)),
                     limits_.max_bin, "bin size overflow");
      case 0xc7:
      case 0xc8:
      case 0xc9:
        return ext(big_endian(std::size_t{1} << (tag - 0xc7)));
      case 0xca:
        obj.type = msgpack::type::FLOAT32;
        obj.via.f64 = std::bit_cast<float>(static_cast<std::uint32_t>(big_endian(4)));
        return;
      case 0xcb:
        obj.type = msgpack::type::FLOAT64;
        obj.via.f64 = std::bit_cast<double>(big_endian(8));
        return;
      case 0xcc:
      case 0xcd:
      case 0xce:
      case 0xcf:
        return positive(obj, big_endian(std::size_t{1} << (tag - 0xcc)));
      case 0xd0:
      case 0xd1:
      case 0xd2:
      case 0xd3:
        return signed_integer(obj, signed_big_endian(std::size_t{1} << (tag - 0xd0)));
      case 0xd4:
      case 0xd5:
      case 0xd6:
      case 0xd7:
      case 0xd8:
        return ext(std::uint64_t{1} << (tag - 0xd4));
      case 0xd9:
      case 0xda:
      case 0xdb:
        return bytes(obj, msgpack::type::STR, big_endian(std::size_t{1} << (tag - 0xd9)),
                     limits_.max_str, "str size overflow");
      case 0xdc:
      case 0xdd:
        return container(obj, big_endian(std::size_t{2} << (tag - 0xdc)), false);
      case 0xde:
      case 0xdf:
        return container(obj, big_endian(std::size_t{2} << (tag - 0xde)), true);
      default:  // 0xc1
        fail("message", "malformed msgpack (reserved type byte 0xc1)");
    }
  }

  const std::uint8_t* at_;
  const std::uint8_t* end_;
  const Limits& limits_;
  const std::size_t max_depth_;
  msgpack::zone& zone_;
  std::size_t objects_ = 1;  // the root
  std::size_t depth_ = 0;    // open containers, plus the root's slot
  // Never read before written: no need to clear 65 entries per message.
  OpenContainer open_[kMaxParseDepth + 1];
};

}  // namespace

msgpack::object parse_object(ByteSpan bytes, const Limits& limits, msgpack::zone& zone) {
  return ObjectBuilder(bytes, limits, zone).build();
}

}  // namespace apiary::codec
