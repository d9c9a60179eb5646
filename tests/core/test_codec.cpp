// Strict msgpack codec: round trips and rejection of malformed or out-of-range input.
#include "core/codec.hpp"
#include "net/rpc_frame.hpp"

#include <gtest/gtest.h>

#include <string>

namespace apiary {
namespace {

Errc decode_error(auto&& decode) {
  try {
    decode();
  } catch (const Error& e) {
    return e.code();
  }
  return Errc::ok;
}

std::string decode_message(auto&& decode) {
  try {
    decode();
  } catch (const Error& e) {
    return e.what();
  }
  return {};
}

TEST(Codec, RoundTrip) {
  const Bytes blob{1, 2, 3, 250};
  codec::Writer w;
  w.array(8).uint(42).sint(-7).str("dht.find").bin(blob).boolean(true).nil().f64(0.5);
  w.map(2).str("a").uint(1).str("b").str("two");
  Bytes wire = w.take();

  codec::Document doc = codec::parse(wire);
  auto items = doc.root().array("msg", 8, 8);
  EXPECT_EQ(items.next().uint("n"), 42u);
  EXPECT_EQ(items.next().sint("s"), -7);
  EXPECT_EQ(items.next().str("method", 64), "dht.find");
  auto bin = items.next().bin("blob", 16);
  EXPECT_EQ(Bytes(bin.begin(), bin.end()), blob);
  EXPECT_TRUE(items.next().boolean("flag"));
  EXPECT_TRUE(items.next().is_nil());
  EXPECT_DOUBLE_EQ(items.next().f64("x"), 0.5);
  auto map = items.next().map("opts", 4);
  EXPECT_EQ(map.at("a").uint("a"), 1u);
  EXPECT_EQ(map.at("b").str("b", 8), "two");
  EXPECT_FALSE(map.find("c").has_value());
  EXPECT_TRUE(items.done());
}

TEST(Codec, TypeAndRangeErrorsNameTheField) {
  codec::Writer w;
  w.array(3).uint(300).str("hello").sint(-1);
  Bytes wire = w.take();
  codec::Document doc = codec::parse(wire);
  auto items = doc.root().array("msg", 3, 3);
  EXPECT_EQ(decode_error([&] { items[0].integer<std::uint8_t>("msg.small"); }), Errc::bad_message);
  EXPECT_NE(decode_message([&] { items[0].integer<std::uint8_t>("msg.small"); }).find("msg.small"),
            std::string::npos);
  EXPECT_EQ(items[0].integer<std::uint16_t>("msg.small"), 300);
  EXPECT_EQ(decode_error([&] { items[1].str("msg.name", 4); }), Errc::bad_message);
  EXPECT_EQ(decode_error([&] { items[1].bin("msg.name", 100); }), Errc::bad_message);
  EXPECT_EQ(decode_error([&] { items[2].uint("msg.neg"); }), Errc::bad_message);
  EXPECT_EQ(decode_error([&] { items[2].sint("msg.neg", 0, 10); }), Errc::bad_message);
  EXPECT_EQ(decode_error([&] { doc.root().array("msg", 4, 8); }), Errc::bad_message);
  EXPECT_EQ(decode_error([&] { doc.root().map("msg", 8); }), Errc::bad_message);
  EXPECT_EQ(decode_error([&] { items[5]; }), Errc::bad_message);
  auto walk = doc.root().array("msg", 3, 3);
  walk.next();
  walk.next();
  walk.next();
  EXPECT_EQ(decode_error([&] { walk.next(); }), Errc::bad_message);
}

TEST(Codec, RejectsMalformedInput) {
  EXPECT_EQ(decode_error([] { codec::parse({}); }), Errc::bad_message);
  const Bytes never_used{0xc1};
  EXPECT_EQ(decode_error([&] { codec::parse(never_used); }), Errc::bad_message);
  const Bytes truncated{0x93, 0x01, 0x02};  // array of 3 with 2 elements
  EXPECT_EQ(decode_error([&] { codec::parse(truncated); }), Errc::bad_message);
  const Bytes trailing{0x01, 0x02};
  EXPECT_NE(decode_message([&] { codec::parse(trailing); }).find("trailing"), std::string::npos);
  // A bin header claiming 4 GiB in a 6-byte message.
  const Bytes huge_bin{0xc6, 0xff, 0xff, 0xff, 0xff, 0x00};
  EXPECT_EQ(decode_error([&] { codec::parse(huge_bin); }), Errc::bad_message);
  // Nesting deeper than the limit.
  Bytes deep(40, 0x91);
  deep.push_back(0x00);
  EXPECT_EQ(decode_error([&] { codec::parse(deep); }), Errc::bad_message);
  codec::Limits limits;
  limits.max_array = 2;
  const Bytes three{0x93, 0x01, 0x02, 0x03};
  EXPECT_EQ(decode_error([&] { codec::parse(three, limits); }), Errc::bad_message);
  // NaN is refused unless asked for.
  codec::Writer w;
  w.f64(std::numeric_limits<double>::quiet_NaN());
  Bytes nan = w.take();
  auto doc = codec::parse(nan);
  EXPECT_EQ(decode_error([&] { doc.root().f64("x"); }), Errc::bad_message);
  EXPECT_TRUE(std::isnan(doc.root().f64("x", /*allow_nonfinite=*/true)));
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
  EXPECT_EQ(decode_error([&] { decode_frame(w.take()); }), Errc::bad_message);
  codec::Writer extra;
  extra.array(3).uint(3).uint(1).uint(0);
  EXPECT_EQ(decode_error([&] { decode_frame(extra.take()); }), Errc::bad_message);
  // An unknown error code from the wire maps to internal.
  codec::Writer odd;
  odd.array(4).uint(2).uint(1).uint(999).str("?");
  EXPECT_EQ(decode_frame(odd.take()).code, Errc::internal);
}

}  // namespace
}  // namespace apiary
