// Strict msgpack codec: round trips and rejection of malformed or out-of-range input.
#include "core/codec.hpp"

#include "tests/core/error_of.hpp"

#include <gtest/gtest.h>

#include <string>

namespace apiary {
namespace {

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
  EXPECT_EQ(testing::error_code_of([&] { items[0].integer<std::uint8_t>("msg.small"); }),
            Errc::bad_message);
  EXPECT_NE(testing::error_message_of([&] {
              items[0].integer<std::uint8_t>("msg.small");
            }).find("msg.small"),
            std::string::npos);
  EXPECT_EQ(items[0].integer<std::uint16_t>("msg.small"), 300);
  EXPECT_EQ(testing::error_code_of([&] { items[1].str("msg.name", 4); }), Errc::bad_message);
  EXPECT_EQ(testing::error_code_of([&] { items[1].bin("msg.name", 100); }), Errc::bad_message);
  EXPECT_EQ(testing::error_code_of([&] { items[2].uint("msg.neg"); }), Errc::bad_message);
  EXPECT_EQ(testing::error_code_of([&] { items[2].sint("msg.neg", 0, 10); }), Errc::bad_message);
  EXPECT_EQ(testing::error_code_of([&] { doc.root().array("msg", 4, 8); }), Errc::bad_message);
  EXPECT_EQ(testing::error_code_of([&] { doc.root().map("msg", 8); }), Errc::bad_message);
  EXPECT_EQ(testing::error_code_of([&] { items[5]; }), Errc::bad_message);
  auto walk = doc.root().array("msg", 3, 3);
  walk.next();
  walk.next();
  walk.next();
  EXPECT_EQ(testing::error_code_of([&] { walk.next(); }), Errc::bad_message);
}

TEST(Codec, RejectsMalformedInput) {
  EXPECT_EQ(testing::error_code_of([] { codec::parse({}); }), Errc::bad_message);
  const Bytes never_used{0xc1};
  EXPECT_EQ(testing::error_code_of([&] { codec::parse(never_used); }), Errc::bad_message);
  const Bytes truncated{0x93, 0x01, 0x02};  // array of 3 with 2 elements
  EXPECT_EQ(testing::error_code_of([&] { codec::parse(truncated); }), Errc::bad_message);
  const Bytes trailing{0x01, 0x02};
  EXPECT_NE(testing::error_message_of([&] { codec::parse(trailing); }).find("trailing"),
            std::string::npos);
  // A bin header claiming 4 GiB in a 6-byte message.
  const Bytes huge_bin{0xc6, 0xff, 0xff, 0xff, 0xff, 0x00};
  EXPECT_EQ(testing::error_code_of([&] { codec::parse(huge_bin); }), Errc::bad_message);
  // Nesting deeper than the limit.
  Bytes deep(40, 0x91);
  deep.push_back(0x00);
  EXPECT_EQ(testing::error_code_of([&] { codec::parse(deep); }), Errc::bad_message);
  codec::Limits limits;
  limits.max_array = 2;
  const Bytes three{0x93, 0x01, 0x02, 0x03};
  EXPECT_EQ(testing::error_code_of([&] { codec::parse(three, limits); }), Errc::bad_message);
  // NaN is refused unless asked for.
  codec::Writer w;
  w.f64(std::numeric_limits<double>::quiet_NaN());
  Bytes nan = w.take();
  auto doc = codec::parse(nan);
  EXPECT_EQ(testing::error_code_of([&] { doc.root().f64("x"); }), Errc::bad_message);
  EXPECT_TRUE(std::isnan(doc.root().f64("x", /*allow_nonfinite=*/true)));
}

// Floats travel as msgpack floats whatever their value: msgpack-c's packer
// would write integral ones as integers and, for 2^64, convert a double out of
// uint64_t's range first (undefined behaviour; found by fuzzing averaging_wire).
TEST(Codec, FloatsAreWrittenAsFloatsEvenWhenIntegral) {
  for (double v : {18446744073709551616.0, 3.0, -2.0, 0.0, -9.3e18, 1e300}) {
    codec::Writer w;
    w.f64(v);
    const Bytes bytes = w.take();
    ASSERT_EQ(bytes.size(), 9u);
    EXPECT_EQ(bytes[0], 0xcb);
    EXPECT_EQ(codec::parse(bytes).root().f64("v"), v);
  }
  codec::Writer w;
  w.f32(18446744073709551616.0f);
  const Bytes bytes = w.take();
  ASSERT_EQ(bytes.size(), 5u);
  EXPECT_EQ(bytes[0], 0xca);
  EXPECT_EQ(codec::parse(bytes).root().f64("v"), 18446744073709551616.0);
}

}  // namespace
}  // namespace apiary
