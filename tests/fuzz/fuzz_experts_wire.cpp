// libFuzzer target: expert requests and replies (experts/wire.hpp) as an
// expert server and a client receive them: info request/reply, forward
// (1 tensor) and backward (2 tensors) requests, tensor replies. Tensors are
// decoded too (the allocation is sized from the message's shape). Only Error
// may come out; decoded tensors re-encode to messages that decode to the same
// shape and values.
#include "experts/wire.hpp"
#include "fuzz_util.hpp"

#include <algorithm>
#include <span>

using namespace apiary;
using namespace apiary::experts;

namespace {

// Bitwise (NaN payloads too). Not memcmp: an empty tensor's data() is null,
// which memcmp must not be handed even for 0 bytes (UBSan nonnull-attribute).
bool same_bits(const HostTensor& a, const HostTensor& b) {
  return a.shape == b.shape &&
         std::ranges::equal(std::as_bytes(std::span(a.values)), std::as_bytes(std::span(b.values)));
}

void check_tensor_round_trip(const HostTensor& tensor, wire::TensorCodec codec) {
  const HostTensor again = wire::decode_tensor_message(wire::encode_tensor(tensor, codec));
  if (codec == wire::TensorCodec::fp32) fuzz::require(same_bits(again, tensor), "fp32 round trip");
  if (codec == wire::TensorCodec::fp16) {
    // fp16 values are exactly representable: a second trip changes nothing.
    const HostTensor third = wire::decode_tensor_message(wire::encode_tensor(again, codec));
    fuzz::require(same_bits(third, again), "fp16 round trip is stable");
  }
}

void fuzz_request(ByteSpan message, std::size_t tensors) {
  codec::Document doc = codec::parse(message);
  wire::ExpertRequest request = wire::parse_request(doc, tensors);
  for (const auto& view : request.tensors) {
    check_tensor_round_trip(wire::decode_tensor(view, "tensor"), view.codec);
  }
}

void fuzz_message(std::uint8_t selector, ByteSpan message) {
  switch (selector % 5) {
    case 0: {
      const std::string uid = wire::parse_info_request(message);
      fuzz::require(wire::parse_info_request(wire::encode_info_request(uid)) == uid,
                    "info request round-trips");
      break;
    }
    case 1: {
      const wire::ExpertInfoReply reply = wire::parse_info_reply(message);
      const wire::ExpertInfoReply again = wire::parse_info_reply(wire::encode_info_reply(reply));
      fuzz::require(again.schema == reply.schema && again.max_batch_size == reply.max_batch_size,
                    "info reply round-trips");
      break;
    }
    case 2:
      fuzz_request(message, 1);
      break;
    case 3:
      fuzz_request(message, 2);
      break;
    default: {
      const HostTensor tensor = wire::decode_tensor_message(message);
      check_tensor_round_trip(tensor, wire::TensorCodec::fp32);
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  fuzz::expect_only<Error>([&] { fuzz_message(data[0], ByteSpan(data + 1, size - 1)); });
  return 0;
}
