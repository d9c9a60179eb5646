#pragma once
// RPC wire format (internal to net/rpc*): every message on a Connection is one
// msgpack array whose first two elements are the frame type and an id:
//
//   request       [0, id, method, payload]      response [1, id, payload]
//   error         [2, id, code, message]        cancel   [3, id]
//   stream_open   [4, id, method]               (accepted with a response, refused with an error)
//   stream_data   [5, id, bytes]                stream_credit [6, id, bytes granted]
//   stream_close  [7, id]  (half-close)         stream_reset  [8, id, code, message]
//
// Ids name a call or stream. The dialer of a connection numbers its calls and
// streams with odd ids, the acceptor with even ids, so either side can tell
// whose call an id belongs to. Errors: decode_frame throws Error{bad_message}.
#include "core/bytes.hpp"
#include "core/error.hpp"
#include "net/rpc.hpp"

#include <cstdint>
#include <span>
#include <string_view>

namespace apiary::rpc::detail {

enum class FrameType : std::uint8_t {
  request = 0,
  response = 1,
  error = 2,
  cancel = 3,
  stream_open = 4,
  stream_data = 5,
  stream_credit = 6,
  stream_close = 7,
  stream_reset = 8,
};

inline constexpr std::size_t max_method_size = 256;
inline constexpr std::size_t max_error_message_size = 4096;

// A decoded frame; views point into the message bytes passed to decode_frame.
struct Frame {
  FrameType type{};
  std::uint64_t id = 0;
  std::string_view method;   // request, stream_open
  ByteSpan payload;          // request, response, stream_data
  std::uint64_t credit = 0;  // stream_credit
  Errc code = Errc::ok;      // error, stream_reset
  std::string_view message;  // error, stream_reset
};

Frame decode_frame(ByteSpan message);

Bytes encode_request(std::uint64_t id, std::string_view method, ByteSpan payload);
Bytes encode_response(std::uint64_t id, ByteSpan payload);
Bytes encode_error(std::uint64_t id, Errc code, std::string_view message);
Bytes encode_cancel(std::uint64_t id);
Bytes encode_stream_open(std::uint64_t id, std::string_view method);
Bytes encode_stream_data(std::uint64_t id, ByteSpan data);
// stream_data frames always use this fixed-size header (uint64 id, bin32
// length: valid, if not minimal, msgpack), so the sender can write it into
// headroom in front of its data (Stream::write_framed) and the receiver finds
// the data at a 16-byte-aligned offset of the frame.
inline constexpr std::size_t stream_data_header_size = 16;
static_assert(stream_data_header_size == kStreamHeadroom);
void write_stream_data_header(std::uint64_t id, std::size_t data_size,
                              std::span<std::uint8_t, stream_data_header_size> out);
Bytes encode_stream_credit(std::uint64_t id, std::uint64_t bytes);
Bytes encode_stream_close(std::uint64_t id);
Bytes encode_stream_reset(std::uint64_t id, Errc code, std::string_view message);

}  // namespace apiary::rpc::detail
