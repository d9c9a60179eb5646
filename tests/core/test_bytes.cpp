#include "core/bytes.hpp"
#include "core/error.hpp"

#include <gtest/gtest.h>

using namespace apiary;

TEST(Bytes, HexRoundTrip) {
  Bytes data{0x00, 0x01, 0xab, 0xff};
  EXPECT_EQ(to_hex(data), "0001abff");
  auto back = from_hex("0001ABff");
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(*back, data);
}

TEST(Bytes, HexRejectsMalformed) {
  EXPECT_FALSE(from_hex("abc").has_value());
  EXPECT_FALSE(from_hex("zz").has_value());
  EXPECT_TRUE(from_hex("").has_value());
}

TEST(Error, CarriesCodeAndMessage) {
  Error e(Errc::permission_denied, "peer id mismatch");
  EXPECT_EQ(e.code(), Errc::permission_denied);
  EXPECT_STREQ(e.what(), "peer id mismatch");
  EXPECT_EQ(errc_name(Errc::deadline_exceeded), "deadline_exceeded");
}
