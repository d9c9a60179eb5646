#pragma once
// Little-endian binary framing for averaging messages. The reader checks every
// length against the bytes present and throws apiary::Error{bad_message} on
// any shortfall, so a malformed message fails only its own request.
#include "core/bytes.hpp"
#include "core/error.hpp"

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace apiary::averaging::wire {

class Writer {
 public:
  explicit Writer(Bytes& out) : out_(out) {}
  void u8(std::uint8_t v) { out_.push_back(v); }
  void u32(std::uint32_t v) { raw(&v, 4); }
  void u64(std::uint64_t v) { raw(&v, 8); }
  void f32(float v) { raw(&v, 4); }
  void f64(double v) { raw(&v, 8); }
  void bytes(ByteSpan b) {
    u32(static_cast<std::uint32_t>(b.size()));
    out_.insert(out_.end(), b.begin(), b.end());
  }
  void str(std::string_view s) { bytes(as_bytes(s)); }
  void raw(const void* data, std::size_t size) {
    const auto* p = static_cast<const std::uint8_t*>(data);
    out_.insert(out_.end(), p, p + size);
  }

 private:
  Bytes& out_;
};

class Reader {
 public:
  explicit Reader(ByteSpan in) : in_(in) {}
  std::uint8_t u8() { return fixed<std::uint8_t>(); }
  std::uint32_t u32() { return fixed<std::uint32_t>(); }
  std::uint64_t u64() { return fixed<std::uint64_t>(); }
  float f32() { return fixed<float>(); }
  double f64() { return fixed<double>(); }
  // A length-prefixed byte string of at most `max_size` bytes.
  ByteSpan bytes(std::size_t max_size) {
    const std::uint32_t size = u32();
    if (size > max_size) throw Error(Errc::bad_message, "field longer than its limit");
    return take(size);
  }
  std::string str(std::size_t max_size) { return std::string(as_string_view(bytes(max_size))); }
  ByteSpan take(std::size_t size) {
    if (size > in_.size() - pos_) throw Error(Errc::bad_message, "message truncated");
    ByteSpan result = in_.subspan(pos_, size);
    pos_ += size;
    return result;
  }
  ByteSpan rest() { return take(in_.size() - pos_); }
  std::size_t remaining() const noexcept { return in_.size() - pos_; }
  void expect_end() const {
    if (pos_ != in_.size()) throw Error(Errc::bad_message, "trailing bytes in message");
  }

 private:
  template <typename T>
  T fixed() {
    T v;
    std::memcpy(&v, take(sizeof(T)).data(), sizeof(T));
    return v;
  }
  ByteSpan in_;
  std::size_t pos_ = 0;
};

}  // namespace apiary::averaging::wire
