#include "core/codec.hpp"

#include "core/msgpack_parse.hpp"

#include <algorithm>
#include <bit>
#include <cmath>
#include <memory>
#include <string>

namespace apiary::codec {

void fail(std::string_view field, std::string_view what) {
  std::string message(field);
  message += ": ";
  message += what;
  throw Error(Errc::bad_message, message);
}

namespace {

std::string_view type_name(msgpack::type::object_type type) {
  switch (type) {
    case msgpack::type::NIL:
      return "nil";
    case msgpack::type::BOOLEAN:
      return "boolean";
    case msgpack::type::POSITIVE_INTEGER:
      return "unsigned integer";
    case msgpack::type::NEGATIVE_INTEGER:
      return "negative integer";
    case msgpack::type::FLOAT32:
      return "float32";
    case msgpack::type::FLOAT64:
      return "float64";
    case msgpack::type::STR:
      return "string";
    case msgpack::type::BIN:
      return "binary";
    case msgpack::type::ARRAY:
      return "array";
    case msgpack::type::MAP:
      return "map";
    case msgpack::type::EXT:
      return "ext";
  }
  return "unknown";
}

[[noreturn]] void fail_type(std::string_view field, std::string_view expected,
                            msgpack::type::object_type got) {
  std::string what = "expected ";
  what += expected;
  what += ", got ";
  what += type_name(got);
  fail(field, what);
}

[[noreturn]] void fail_size(std::string_view field, std::string_view kind, std::size_t size,
                            std::size_t min_size, std::size_t max_size) {
  std::string what = "expected " + std::string(kind) + " of ";
  if (min_size == max_size) {
    what += std::to_string(min_size);
  } else {
    what += std::to_string(min_size) + ".." + std::to_string(max_size);
  }
  what += " elements/bytes, got " + std::to_string(size);
  fail(field, what);
}

}  // namespace

// ---- Writer -------------------------------------------------------------------

Writer& Writer::array(std::uint32_t size) {
  packer_.pack_array(size);
  return *this;
}
Writer& Writer::map(std::uint32_t size) {
  packer_.pack_map(size);
  return *this;
}
Writer& Writer::nil() {
  packer_.pack_nil();
  return *this;
}
Writer& Writer::boolean(bool value) {
  if (value) {
    packer_.pack_true();
  } else {
    packer_.pack_false();
  }
  return *this;
}
Writer& Writer::uint(std::uint64_t value) {
  packer_.pack_uint64(value);
  return *this;
}
Writer& Writer::sint(std::int64_t value) {
  packer_.pack_int64(value);
  return *this;
}
// Floats are always written as msgpack float 64/32 (0xcb/0xca, big-endian),
// never as msgpack-c's packer writes them: it packs integral values as
// integers after a range check that lets 2^64 through, so encoding 1.8e19
// converted a double out of uint64_t's range (undefined behaviour, found by
// tests/fuzz averaging_wire). Reader::f64 accepts either form.
Writer& Writer::f64(double value) {
  const auto bits = std::bit_cast<std::uint64_t>(value);
  sink_.bytes.push_back(0xcb);
  for (int shift = 56; shift >= 0; shift -= 8)
    sink_.bytes.push_back(static_cast<std::uint8_t>(bits >> shift));
  return *this;
}
Writer& Writer::f32(float value) {
  const auto bits = std::bit_cast<std::uint32_t>(value);
  sink_.bytes.push_back(0xca);
  for (int shift = 24; shift >= 0; shift -= 8)
    sink_.bytes.push_back(static_cast<std::uint8_t>(bits >> shift));
  return *this;
}
Writer& Writer::str(std::string_view value) {
  if (value.size() > std::numeric_limits<std::uint32_t>::max()) {
    throw Error(Errc::invalid_argument, "codec: string too large to encode");
  }
  packer_.pack_str(static_cast<std::uint32_t>(value.size()));
  packer_.pack_str_body(value.data(), static_cast<std::uint32_t>(value.size()));
  return *this;
}
Writer& Writer::bin(ByteSpan value) {
  if (value.size() > std::numeric_limits<std::uint32_t>::max()) {
    throw Error(Errc::invalid_argument, "codec: binary too large to encode");
  }
  packer_.pack_bin(static_cast<std::uint32_t>(value.size()));
  packer_.pack_bin_body(reinterpret_cast<const char*>(value.data()),
                        static_cast<std::uint32_t>(value.size()));
  return *this;
}
Writer& Writer::raw(ByteSpan encoded) {
  sink_.write(reinterpret_cast<const char*>(encoded.data()), encoded.size());
  return *this;
}

// ---- Reader -------------------------------------------------------------------

bool Reader::boolean(std::string_view field) const {
  if (object_->type != msgpack::type::BOOLEAN) fail_type(field, "boolean", object_->type);
  return object_->via.boolean;
}

std::uint64_t Reader::uint(std::string_view field, std::uint64_t max) const {
  if (object_->type != msgpack::type::POSITIVE_INTEGER) {
    fail_type(field, "unsigned integer", object_->type);
  }
  const std::uint64_t value = object_->via.u64;
  if (value > max) {
    fail(field,
         "expected unsigned integer <= " + std::to_string(max) + ", got " + std::to_string(value));
  }
  return value;
}

std::int64_t Reader::sint(std::string_view field, std::int64_t min, std::int64_t max) const {
  std::int64_t value;
  if (object_->type == msgpack::type::POSITIVE_INTEGER) {
    if (object_->via.u64 > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
      fail(field, "integer out of range");
    }
    value = static_cast<std::int64_t>(object_->via.u64);
  } else if (object_->type == msgpack::type::NEGATIVE_INTEGER) {
    value = object_->via.i64;
  } else {
    fail_type(field, "integer", object_->type);
  }
  if (value < min || value > max) {
    fail(field, "expected integer in [" + std::to_string(min) + ", " + std::to_string(max) +
                    "], got " + std::to_string(value));
  }
  return value;
}

double Reader::f64(std::string_view field, bool allow_nonfinite) const {
  double value;
  switch (object_->type) {
    case msgpack::type::FLOAT32:
    case msgpack::type::FLOAT64:
      value = object_->via.f64;
      break;
    case msgpack::type::POSITIVE_INTEGER:
      value = static_cast<double>(object_->via.u64);
      break;
    case msgpack::type::NEGATIVE_INTEGER:
      value = static_cast<double>(object_->via.i64);
      break;
    default:
      fail_type(field, "number", object_->type);
  }
  if (!allow_nonfinite && !std::isfinite(value)) fail(field, "expected a finite number");
  return value;
}

std::string_view Reader::str(std::string_view field, std::size_t max_size,
                             std::size_t min_size) const {
  if (object_->type != msgpack::type::STR) fail_type(field, "string", object_->type);
  const std::size_t size = object_->via.str.size;
  if (size < min_size || size > max_size) fail_size(field, "string", size, min_size, max_size);
  return {object_->via.str.ptr, size};
}

ByteSpan Reader::bin(std::string_view field, std::size_t max_size, std::size_t min_size) const {
  if (object_->type != msgpack::type::BIN) fail_type(field, "binary", object_->type);
  const std::size_t size = object_->via.bin.size;
  if (size < min_size || size > max_size) fail_size(field, "binary", size, min_size, max_size);
  return {reinterpret_cast<const std::uint8_t*>(object_->via.bin.ptr), size};
}

ArrayReader Reader::array(std::string_view field, std::size_t min_size,
                          std::size_t max_size) const {
  if (object_->type != msgpack::type::ARRAY) fail_type(field, "array", object_->type);
  const std::size_t size = object_->via.array.size;
  if (size < min_size || size > max_size) fail_size(field, "array", size, min_size, max_size);
  return ArrayReader(object_->via.array.ptr, size, std::string(field));
}

MapReader Reader::map(std::string_view field, std::size_t max_size) const {
  if (object_->type != msgpack::type::MAP) fail_type(field, "map", object_->type);
  const std::size_t size = object_->via.map.size;
  if (size > max_size) fail_size(field, "map", size, 0, max_size);
  return MapReader(object_->via.map.ptr, size, std::string(field));
}

// ---- ArrayReader / MapReader ----------------------------------------------------

Reader ArrayReader::next() {
  if (pos_ >= size_) fail(field_, "too few elements (" + std::to_string(size_) + ")");
  return Reader(items_[pos_++]);
}

Reader ArrayReader::operator[](std::size_t index) const {
  if (index >= size_) fail(field_, "index " + std::to_string(index) + " out of range");
  return Reader(items_[index]);
}

std::optional<Reader> MapReader::find(std::string_view key) const {
  for (std::size_t i = 0; i < size_; ++i) {
    const msgpack::object& k = entries_[i].key;
    if (k.type == msgpack::type::STR && std::string_view(k.via.str.ptr, k.via.str.size) == key) {
      return Reader(entries_[i].val);
    }
  }
  return std::nullopt;
}

Reader MapReader::at(std::string_view key) const {
  auto value = find(key);
  if (!value) fail(field_, "missing key \"" + std::string(key) + "\"");
  return *value;
}

Reader MapReader::key(std::size_t index) const {
  if (index >= size_) fail(field_, "index out of range");
  return Reader(entries_[index].key);
}

Reader MapReader::value(std::size_t index) const {
  if (index >= size_) fail(field_, "index out of range");
  return Reader(entries_[index].val);
}

// ---- parse -------------------------------------------------------------------------

Document parse(ByteSpan bytes, const Limits& limits) {
  if (bytes.empty()) fail("message", "empty");
  auto zone = std::make_unique<msgpack::zone>();
  const msgpack::object root = parse_object(bytes, limits, *zone);
  return Document(msgpack::object_handle(root, std::move(zone)));
}

}  // namespace apiary::codec
