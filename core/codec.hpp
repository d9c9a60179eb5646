#pragma once
// Strict msgpack codecs: every message of every layer (RPC frames, DHT, averaging)
// is a msgpack value written with codec::Writer and read back with codec::Reader.
//
// Decoding untrusted bytes is strict: parse() bounds nesting depth and the sizes
// of arrays, maps, strings and binaries, and refuses trailing bytes; every
// accessor checks the type, size and integer range it expects and throws
// apiary::Error{Errc::bad_message, "<field>: expected …"} otherwise, so a bad
// message becomes an error for that one request or connection.
//
// Style (messages are positional arrays; fields are named only in errors):
//
//   // encode [method, payload]
//   codec::Writer w;
//   w.array(2).str("dht.find").bin(payload);
//   Bytes wire = w.take();
//
//   // decode
//   codec::Document doc = codec::parse(wire);
//   codec::ArrayReader msg = doc.root().array("find", 2, 2);
//   std::string_view method = msg.next().str("find.method", 64);
//   ByteSpan payload = msg.next().bin("find.payload", 1 << 20);
//
// The one exception: bulk tensor data stays raw binary — the all-reduce chunk
// frames (averaging/stream_wire.hpp: an 8-byte header, then the payload read
// in place) and state-download chunks (raw fp32) — because they are the
// bytes being moved and must cost no copy; their headers and every other
// field around them are msgpack.
//
// Views (string_view, ByteSpan, Reader) point into the Document's buffer and
// stay valid as long as the Document and the bytes passed to parse() live.
// Errors: throws apiary::Error (bad_message on decode).
#include "core/bytes.hpp"
#include "core/error.hpp"

#include <msgpack.hpp>

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>

namespace apiary::codec {

// Appends msgpack to a Bytes buffer.
class Writer {
 public:
  Writer() : packer_(sink_) {}
  explicit Writer(std::size_t reserve) : packer_(sink_) { sink_.bytes.reserve(reserve); }
  Writer(const Writer&) = delete;
  Writer& operator=(const Writer&) = delete;

  Writer& array(std::uint32_t size);
  Writer& map(std::uint32_t size);
  Writer& nil();
  Writer& boolean(bool value);
  Writer& uint(std::uint64_t value);
  Writer& sint(std::int64_t value);
  Writer& f64(double value);
  Writer& f32(float value);
  Writer& str(std::string_view value);
  Writer& bin(ByteSpan value);
  // Appends an already-encoded msgpack value verbatim (nested messages).
  Writer& raw(ByteSpan encoded);

  std::size_t size() const noexcept { return sink_.bytes.size(); }
  // The encoded bytes; the writer is empty afterwards.
  Bytes take() { return std::move(sink_.bytes); }

 private:
  struct Sink {
    Bytes bytes;
    void write(const char* data, std::size_t size) {
      bytes.insert(bytes.end(), reinterpret_cast<const std::uint8_t*>(data),
                   reinterpret_cast<const std::uint8_t*>(data) + size);
    }
  };
  Sink sink_;
  msgpack::packer<Sink> packer_;
};

// Bounds applied while parsing (before any accessor runs).
struct Limits {
  std::size_t max_depth = 16;
  std::size_t max_array = 1u << 20;  // elements
  std::size_t max_map = 1u << 16;    // entries
  std::size_t max_str = 1u << 20;    // bytes
  std::size_t max_bin = 1u << 30;    // bytes (the transport frame limit is smaller)
  // Every value, key and element together (core/msgpack_parse.hpp): what the
  // parser may allocate, sized to the message's purpose.
  std::size_t max_objects = 1u << 16;
};

class ArrayReader;
class MapReader;

// A view of one parsed msgpack value.
class Reader {
 public:
  explicit Reader(const msgpack::object& object) noexcept : object_(&object) {}

  msgpack::type::object_type type() const noexcept { return object_->type; }
  bool is_nil() const noexcept { return object_->type == msgpack::type::NIL; }

  bool boolean(std::string_view field) const;
  std::uint64_t uint(std::string_view field,
                     std::uint64_t max = std::numeric_limits<std::uint64_t>::max()) const;
  std::int64_t sint(std::string_view field,
                    std::int64_t min = std::numeric_limits<std::int64_t>::min(),
                    std::int64_t max = std::numeric_limits<std::int64_t>::max()) const;
  // Any integer type, range-checked against T.
  template <std::integral T>
  T integer(std::string_view field) const {
    if constexpr (std::is_signed_v<T>) {
      return static_cast<T>(
          sint(field, std::numeric_limits<T>::min(), std::numeric_limits<T>::max()));
    } else {
      return static_cast<T>(uint(field, std::numeric_limits<T>::max()));
    }
  }
  // Float or integer; rejects NaN and infinities unless allow_nonfinite.
  double f64(std::string_view field, bool allow_nonfinite = false) const;
  std::string_view str(std::string_view field, std::size_t max_size,
                       std::size_t min_size = 0) const;
  ByteSpan bin(std::string_view field, std::size_t max_size, std::size_t min_size = 0) const;
  // Binary of exactly `size` bytes (keys, hashes, signatures).
  ByteSpan fixed_bin(std::string_view field, std::size_t size) const {
    return bin(field, size, size);
  }
  ArrayReader array(std::string_view field, std::size_t min_size, std::size_t max_size) const;
  MapReader map(std::string_view field, std::size_t max_size) const;

  const msgpack::object& object() const noexcept { return *object_; }

 private:
  const msgpack::object* object_;
};

// Elements of an array, read in order with next().
class ArrayReader {
 public:
  ArrayReader(const msgpack::object* items, std::size_t size, std::string field)
      : items_(items), size_(size), field_(std::move(field)) {}
  std::size_t size() const noexcept { return size_; }
  std::size_t remaining() const noexcept { return size_ - pos_; }
  bool done() const noexcept { return pos_ == size_; }
  // Throws bad_message when no element is left.
  Reader next();
  Reader operator[](std::size_t index) const;

 private:
  const msgpack::object* items_;
  std::size_t size_;
  std::size_t pos_ = 0;
  std::string field_;
};

// Entries of a map with string keys (or iterate raw entries).
class MapReader {
 public:
  MapReader(const msgpack::object_kv* entries, std::size_t size, std::string field)
      : entries_(entries), size_(size), field_(std::move(field)) {}
  std::size_t size() const noexcept { return size_; }
  // The value for a string key, if present.
  std::optional<Reader> find(std::string_view key) const;
  // The value for a string key; throws bad_message when absent.
  Reader at(std::string_view key) const;
  Reader key(std::size_t index) const;
  Reader value(std::size_t index) const;

 private:
  const msgpack::object_kv* entries_;
  std::size_t size_;
  std::string field_;
};

// A parsed message: owns the msgpack zone; the input bytes must outlive it
// (binaries and strings are referenced, not copied).
class Document {
 public:
  explicit Document(msgpack::object_handle handle) : handle_(std::move(handle)) {}
  Reader root() const noexcept { return Reader(handle_.get()); }

 private:
  msgpack::object_handle handle_;
};

// Parses exactly one msgpack value filling all of `bytes`.
// Throws Error{bad_message} on malformed input, limit violations or trailing bytes.
Document parse(ByteSpan bytes, const Limits& limits = {});

// Throws Error{bad_message, "<field>: <what>"}.
[[noreturn]] void fail(std::string_view field, std::string_view what);

}  // namespace apiary::codec
