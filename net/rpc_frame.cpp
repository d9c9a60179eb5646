#include "net/rpc_frame.hpp"

#include "core/codec.hpp"

#include <algorithm>
#include <cstring>
#include <limits>

namespace apiary::rpc::detail {
namespace {

// Headroom for the array, type, id and bin headers in front of a payload.
constexpr std::size_t header_reserve = 32;

Bytes encode_header_only(FrameType type, std::uint64_t id) {
  codec::Writer w(header_reserve);
  w.array(2).uint(static_cast<std::uint8_t>(type)).uint(id);
  return w.take();
}

Errc checked_code(std::uint64_t raw) {
  if (raw == 0 || raw > static_cast<std::uint64_t>(Errc::io_error)) return Errc::internal;
  return static_cast<Errc>(raw);
}

std::string_view clipped(std::string_view message) {
  return message.substr(0, std::min(message.size(), max_error_message_size));
}

}  // namespace

Frame decode_frame(ByteSpan message) {
  codec::Limits limits;
  limits.max_depth = 2;
  limits.max_array = 8;
  limits.max_map = 0;
  limits.max_str = std::max(max_method_size, max_error_message_size);
  limits.max_bin = std::numeric_limits<std::uint32_t>::max();
  codec::Document doc = codec::parse(message, limits);
  codec::ArrayReader items = doc.root().array("rpc frame", 2, 4);
  Frame frame;
  const auto raw_type = items.next().uint("rpc frame.type", 8);
  frame.type = static_cast<FrameType>(raw_type);
  frame.id = items.next().uint("rpc frame.id");
  std::size_t expected_size = 2;
  switch (frame.type) {
    case FrameType::request:
      frame.method = items.next().str("rpc request.method", max_method_size, 1);
      frame.payload = items.next().bin("rpc request.payload", message.size());
      expected_size = 4;
      break;
    case FrameType::response:
      frame.payload = items.next().bin("rpc response.payload", message.size());
      expected_size = 3;
      break;
    case FrameType::error:
    case FrameType::stream_reset:
      frame.code = checked_code(items.next().uint("rpc error.code"));
      frame.message = items.next().str("rpc error.message", max_error_message_size);
      expected_size = 4;
      break;
    case FrameType::stream_open:
      frame.method = items.next().str("rpc stream_open.method", max_method_size, 1);
      expected_size = 3;
      break;
    case FrameType::stream_data:
      frame.payload = items.next().bin("rpc stream_data.bytes", message.size());
      expected_size = 3;
      break;
    case FrameType::stream_credit:
      frame.credit = items.next().uint("rpc stream_credit.bytes", std::uint64_t{1} << 40);
      expected_size = 3;
      break;
    case FrameType::cancel:
    case FrameType::stream_close:
      break;
  }
  if (items.size() != expected_size) codec::fail("rpc frame", "unexpected number of elements");
  return frame;
}

Bytes encode_request(std::uint64_t id, std::string_view method, ByteSpan payload) {
  codec::Writer w(header_reserve + method.size() + payload.size());
  w.array(4).uint(static_cast<std::uint8_t>(FrameType::request)).uint(id).str(method).bin(payload);
  return w.take();
}

Bytes encode_response(std::uint64_t id, ByteSpan payload) {
  codec::Writer w(header_reserve + payload.size());
  w.array(3).uint(static_cast<std::uint8_t>(FrameType::response)).uint(id).bin(payload);
  return w.take();
}

Bytes encode_error(std::uint64_t id, Errc code, std::string_view message) {
  const auto text = clipped(message);
  codec::Writer w(header_reserve + text.size());
  w.array(4)
      .uint(static_cast<std::uint8_t>(FrameType::error))
      .uint(id)
      .uint(static_cast<std::uint64_t>(code))
      .str(text);
  return w.take();
}

Bytes encode_cancel(std::uint64_t id) {
  return encode_header_only(FrameType::cancel, id);
}

Bytes encode_stream_open(std::uint64_t id, std::string_view method) {
  codec::Writer w(header_reserve + method.size());
  w.array(3).uint(static_cast<std::uint8_t>(FrameType::stream_open)).uint(id).str(method);
  return w.take();
}

void write_stream_data_header(std::uint64_t id, std::size_t data_size,
                              std::span<std::uint8_t, stream_data_header_size> out) {
  if (data_size > std::numeric_limits<std::uint32_t>::max())
    throw Error(Errc::resource_exhausted, "stream message too large");
  out[0] = 0x93;  // fixarray of 3
  out[1] = static_cast<std::uint8_t>(FrameType::stream_data);
  out[2] = 0xcf;  // uint64, big-endian
  for (int i = 0; i < 8; ++i) out[3 + i] = static_cast<std::uint8_t>(id >> (56 - 8 * i));
  out[11] = 0xc6;  // bin32, big-endian length
  for (int i = 0; i < 4; ++i)
    out[12 + i] = static_cast<std::uint8_t>(static_cast<std::uint32_t>(data_size) >> (24 - 8 * i));
}

Bytes encode_stream_data(std::uint64_t id, ByteSpan data) {
  Bytes frame(stream_data_header_size + data.size());
  write_stream_data_header(
      id, data.size(),
      std::span<std::uint8_t, stream_data_header_size>(frame.data(), stream_data_header_size));
  if (!data.empty()) std::memcpy(frame.data() + stream_data_header_size, data.data(), data.size());
  return frame;
}

Bytes encode_stream_credit(std::uint64_t id, std::uint64_t bytes) {
  codec::Writer w(header_reserve);
  w.array(3).uint(static_cast<std::uint8_t>(FrameType::stream_credit)).uint(id).uint(bytes);
  return w.take();
}

Bytes encode_stream_close(std::uint64_t id) {
  return encode_header_only(FrameType::stream_close, id);
}

Bytes encode_stream_reset(std::uint64_t id, Errc code, std::string_view message) {
  const auto text = clipped(message);
  codec::Writer w(header_reserve + text.size());
  w.array(4)
      .uint(static_cast<std::uint8_t>(FrameType::stream_reset))
      .uint(id)
      .uint(static_cast<std::uint64_t>(code))
      .str(text);
  return w.take();
}

}  // namespace apiary::rpc::detail
