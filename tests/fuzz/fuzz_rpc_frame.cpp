// libFuzzer target: the RPC frame decoder (net/rpc_frame.hpp). Only
// Error{bad_message} may come out; a frame that decodes re-encodes with the
// production encoder of its type to a frame that decodes to the same fields.
#include "fuzz_util.hpp"
#include "net/rpc_frame.hpp"

using namespace apiary;
using namespace apiary::rpc::detail;

namespace {

Bytes encode_again(const Frame& f) {
  switch (f.type) {
    case FrameType::request:
      return encode_request(f.id, f.method, f.payload);
    case FrameType::response:
      return encode_response(f.id, f.payload);
    case FrameType::error:
      return encode_error(f.id, f.code, f.message);
    case FrameType::cancel:
      return encode_cancel(f.id);
    case FrameType::stream_open:
      return encode_stream_open(f.id, f.method);
    case FrameType::stream_data:
      return encode_stream_data(f.id, f.payload);
    case FrameType::stream_credit:
      return encode_stream_credit(f.id, f.credit);
    case FrameType::stream_close:
      return encode_stream_close(f.id);
    case FrameType::stream_reset:
      return encode_stream_reset(f.id, f.code, f.message);
  }
  fuzz::require(false, "decoded frame has a known type");
  return {};
}

bool same(ByteSpan a, ByteSpan b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  Frame frame;
  if (!fuzz::expect_only<Error>([&] { frame = decode_frame(ByteSpan(data, size)); })) return 0;
  const Bytes wire = encode_again(frame);
  const Frame again = decode_frame(wire);
  fuzz::require(again.type == frame.type && again.id == frame.id, "type and id round-trip");
  fuzz::require(again.method == frame.method && again.message == frame.message, "text round-trips");
  fuzz::require(same(again.payload, frame.payload), "payload round-trips");
  fuzz::require(again.credit == frame.credit && again.code == frame.code, "credit and code");
  return 0;
}
