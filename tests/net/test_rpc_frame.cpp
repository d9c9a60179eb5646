#include "net/rpc_frame.hpp"

#include "core/codec.hpp"

#include "tests/core/error_of.hpp"

#include <gtest/gtest.h>

#include <string>

namespace apiary {
namespace {

// stream_data frames carry a fixed 16-byte header (written into the sender's
// headroom); the data starts right after it whatever the id and size.
TEST(RpcFrame, StreamDataHasAFixedHeader) {
  using namespace rpc::detail;
  for (std::uint64_t id : {std::uint64_t{1}, std::uint64_t{300}, std::uint64_t{1} << 40}) {
    for (std::size_t size : {std::size_t{0}, std::size_t{5}, std::size_t{70000}}) {
      Bytes data(size);
      for (std::size_t i = 0; i < size; ++i) data[i] = static_cast<std::uint8_t>(i * 3 + id);
      const Bytes wire = encode_stream_data(id, data);
      ASSERT_EQ(wire.size(), stream_data_header_size + size);
      const Frame frame = decode_frame(wire);
      EXPECT_EQ(frame.type, FrameType::stream_data);
      EXPECT_EQ(frame.id, id);
      EXPECT_EQ(Bytes(frame.payload.begin(), frame.payload.end()), data);
      if (size > 0) {
        EXPECT_EQ(frame.payload.data(), wire.data() + stream_data_header_size);
      }
    }
  }
}

TEST(RpcFrame, RoundTripsEveryType) {
  using namespace rpc::detail;
  const Bytes payload{9, 8, 7};
  const Bytes request_wire = encode_request(5, "m.x", payload);  // frames view into it
  auto request = decode_frame(request_wire);
  EXPECT_EQ(request.type, FrameType::request);
  EXPECT_EQ(request.id, 5u);
  EXPECT_EQ(request.method, "m.x");
  EXPECT_EQ(Bytes(request.payload.begin(), request.payload.end()), payload);
  Bytes wire = encode_error(6, Errc::not_found, "gone");
  auto error = decode_frame(wire);
  EXPECT_EQ(error.type, FrameType::error);
  EXPECT_EQ(error.code, Errc::not_found);
  EXPECT_EQ(error.message, "gone");
  EXPECT_EQ(decode_frame(encode_stream_credit(7, 1234)).credit, 1234u);
  EXPECT_EQ(decode_frame(encode_stream_close(8)).type, FrameType::stream_close);
  EXPECT_EQ(decode_frame(encode_cancel(9)).type, FrameType::cancel);
  // Unknown frame types and extra elements are refused.
  codec::Writer w;
  w.array(2).uint(9).uint(1);
  EXPECT_EQ(testing::error_code_of([&] { decode_frame(w.take()); }), Errc::bad_message);
  codec::Writer extra;
  extra.array(3).uint(3).uint(1).uint(0);
  EXPECT_EQ(testing::error_code_of([&] { decode_frame(extra.take()); }), Errc::bad_message);
  // An unknown error code from the wire maps to internal.
  codec::Writer odd;
  odd.array(4).uint(2).uint(1).uint(999).str("?");
  EXPECT_EQ(decode_frame(odd.take()).code, Errc::internal);
}

TEST(Codec, FuzzedBytesNeverCrash) {
  // Deterministic pseudo-random inputs: every outcome is a value or bad_message.
  std::uint64_t state = 12345;
  int errors = 0;
  for (int i = 0; i < 20000; ++i) {
    Bytes input(1 + (i % 24));
    for (auto& b : input) {
      state = state * 6364136223846793005ULL + 1442695040888963407ULL;
      b = static_cast<std::uint8_t>(state >> 56);
    }
    try {
      auto frame = rpc::detail::decode_frame(input);
      (void)frame;
    } catch (const Error& e) {
      ASSERT_EQ(e.code(), Errc::bad_message);
      ++errors;
    }
  }
  EXPECT_GT(errors, 19000);
}

}  // namespace
}  // namespace apiary
