#include "core/error.hpp"
#include "experts/wire.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

using namespace apiary;
using namespace apiary::experts;

namespace {
HostTensor ramp(std::vector<std::size_t> shape) {
  auto t = HostTensor::zeros(std::move(shape));
  for (std::size_t i = 0; i < t.values.size(); ++i) t.values[i] = 0.25f * float(i) - 3.0f;
  return t;
}
}  // namespace

TEST(ExpertWire, RequestsRoundTripInBothCodecs) {
  auto x = ramp({3, 4});
  auto g = ramp({3, 2});
  for (auto codec : {wire::TensorCodec::fp32, wire::TensorCodec::fp16}) {
    auto bytes = wire::encode_backward("ffn.1.2", x, g, codec);
    auto doc = codec::parse(bytes);
    auto request = wire::parse_request(doc, 2);
    EXPECT_EQ(request.uid, "ffn.1.2");
    EXPECT_EQ(request.reply_codec, codec);
    auto x2 = wire::decode_tensor(request.tensors[0], "input");
    auto g2 = wire::decode_tensor(request.tensors[1], "grad_output");
    EXPECT_EQ(x2.shape, x.shape);
    EXPECT_EQ(g2.shape, g.shape);
    // Quarter steps up to 3 are exact in fp16 too.
    EXPECT_EQ(x2.values, x.values);
    EXPECT_EQ(g2.values, g.values);
    // fp16 halves the payload.
    if (codec == wire::TensorCodec::fp16) {
      EXPECT_LT(bytes.size(),
                wire::encode_backward("ffn.1.2", x, g, wire::TensorCodec::fp32).size());
    }
  }
  // Forward requests carry one tensor; asking for two is a bad message.
  auto forward = wire::encode_forward("ffn.0.0", x, wire::TensorCodec::fp16);
  auto doc = codec::parse(forward);
  EXPECT_THROW(wire::parse_request(doc, 2), Error);
}

TEST(ExpertWire, RefusesInconsistentTensors) {
  codec::Writer w;
  // Shape [2, 3] fp32 needs 24 bytes; 20 are sent.
  std::vector<std::uint8_t> data(20);
  w.array(3).str("ffn.0.0");
  w.array(3).uint(0).array(2).uint(2).uint(3).bin(data);
  w.uint(0);
  auto bytes = w.take();
  auto doc = codec::parse(bytes);
  try {
    wire::parse_request(doc, 1);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::bad_message);
  }
  codec::Writer bad_uid;
  bad_uid.array(3).str("../etc").array(3).uint(0).array(1).uint(0).bin({}).uint(0);
  auto bad_uid_bytes = bad_uid.take();
  auto bad_uid_doc = codec::parse(bad_uid_bytes);
  EXPECT_THROW(wire::parse_request(bad_uid_doc, 1), Error);
  // Non-finite values are refused when decoded.
  auto t = ramp({1, 2});
  t.values[1] = INFINITY;
  auto inf_bytes = wire::encode_tensor(t, wire::TensorCodec::fp32);
  EXPECT_THROW(wire::decode_tensor_message(inf_bytes), Error);
}

TEST(ExpertWire, MutatedMessagesNeverCrash) {
  auto valid =
      wire::encode_backward("ffn.3.4", ramp({2, 3}), ramp({2, 3}), wire::TensorCodec::fp16);
  std::mt19937_64 rng(1);
  int accepted = 0;
  for (int i = 0; i < 3000; ++i) {
    auto bytes = valid;
    const int flips = 1 + int(rng() % 4);
    for (int f = 0; f < flips; ++f) bytes[rng() % bytes.size()] = std::uint8_t(rng());
    if (rng() % 4 == 0) bytes.resize(rng() % bytes.size());
    try {
      auto doc = codec::parse(bytes);
      auto request = wire::parse_request(doc, 2);
      for (auto& view : request.tensors) wire::decode_tensor(view, "t");
      ++accepted;
    } catch (const Error&) {
    }
  }
  EXPECT_LT(accepted, 3000);  // most mutations are caught; none crashes
}

// An empty tensor decodes to an empty tensor in both codecs (its data() is
// null: decoding once memcpy'd from it, UB found by fuzzing experts_wire).
TEST(ExpertWire, EmptyTensorsRoundTrip) {
  for (auto codec : {wire::TensorCodec::fp32, wire::TensorCodec::fp16}) {
    HostTensor empty;
    empty.shape = {0, 4};
    const HostTensor back = wire::decode_tensor_message(wire::encode_tensor(empty, codec));
    EXPECT_EQ(back.shape, empty.shape);
    EXPECT_TRUE(back.values.empty());
  }
}
