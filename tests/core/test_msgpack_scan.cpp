// core/msgpack_scan: what a message can make msgpack-c allocate is bounded
// by its length and by the caller's object budget, before anything is unpacked.
#include "core/codec.hpp"
#include "core/msgpack_scan.hpp"
#include "tests/core/error_of.hpp"

#include <gtest/gtest.h>

using namespace apiary;

namespace {

Bytes encoded_sample() {
  codec::Writer w;
  w.array(4).uint(70000).map(1).str("k").sint(-40000);
  w.array(2).f64(0.5).bin(Bytes(300, 7));
  w.str(std::string(40, 'x'));
  return w.take();
}

}  // namespace

TEST(MsgpackScan, CountsEveryValueKeyAndElement) {
  // root array, uint, map, key, value, inner array, f64, bin, str
  EXPECT_EQ(codec::scan_objects(encoded_sample(), {}), 9u);
  const Bytes scalar{0x2a};
  EXPECT_EQ(codec::scan_objects(scalar, {}), 1u);
}

TEST(MsgpackScan, RefusesAContainerClaimingMoreElementsThanBytesFollow) {
  // array32 claiming 2^20 elements followed by 3 bytes: msgpack-c would size a
  // 16 MiB table from the header before noticing the truncation.
  const Bytes lying_array{0xdd, 0x00, 0x10, 0x00, 0x00, 0x01, 0x02, 0x03};
  EXPECT_NE(
      apiary::testing::error_message_of([&] { codec::parse(lying_array); }).find("claims 1048576"),
      std::string::npos);
  const Bytes lying_map{0xdf, 0x00, 0x00, 0x01, 0x00, 0x01, 0x02};  // 256 pairs, 2 bytes
  EXPECT_EQ(apiary::testing::error_code_of([&] { codec::parse(lying_map); }), Errc::bad_message);
  // Nested headers each claiming the maximum cannot multiply it either.
  Bytes nested;
  for (int i = 0; i < 12; ++i) nested.insert(nested.end(), {0xdc, 0xff, 0xff});
  EXPECT_EQ(apiary::testing::error_code_of([&] { codec::parse(nested); }), Errc::bad_message);
}

TEST(MsgpackScan, EnforcesTheObjectBudgetOfTheMessagesPurpose) {
  codec::Writer w;
  w.array(5000);
  for (int i = 0; i < 5000; ++i) w.uint(1);
  const Bytes many = w.take();
  codec::Limits limits;
  limits.max_objects = 4096;
  EXPECT_NE(
      apiary::testing::error_message_of([&] { codec::parse(many, limits); }).find("more than 4096"),
      std::string::npos);
  limits.max_objects = 5001;
  EXPECT_EQ(codec::parse(many, limits).root().array("many", 5000, 5000).size(), 5000u);
}

TEST(MsgpackScan, ReportsTruncationAndReservedBytesLikeTheParser) {
  const Bytes truncated_str{0xd9, 0x10, 'a', 'b'};
  EXPECT_NE(
      apiary::testing::error_message_of([&] { codec::parse(truncated_str); }).find("truncated"),
      std::string::npos);
  const Bytes reserved{0x92, 0x01, 0xc1};
  EXPECT_EQ(apiary::testing::error_code_of([&] { codec::parse(reserved); }), Errc::bad_message);
  const Bytes truncated_int{0xcf, 0x00, 0x01};
  EXPECT_EQ(apiary::testing::error_code_of([&] { codec::parse(truncated_int); }),
            Errc::bad_message);
}

TEST(MsgpackScan, NestingIsBoundedByTheLimitAndByTheScansOwnStack) {
  // [[[…[1]…]]] nested `levels` deep.
  auto nested = [](int levels) {
    Bytes bytes(static_cast<std::size_t>(levels), 0x91);
    bytes.push_back(0x01);
    return bytes;
  };
  EXPECT_EQ(codec::scan_objects(nested(8), {.max_depth = 8}), 9u);
  EXPECT_NE(apiary::testing::error_message_of([&] {
              codec::scan_objects(nested(9), {.max_depth = 8});
            }).find("nesting too deep"),
            std::string::npos);
  // A limit above the scan's stack is the stack's size, never an overflow.
  EXPECT_EQ(codec::scan_objects(nested(int(codec::kMaxScanDepth)), {.max_depth = 1000}),
            codec::kMaxScanDepth + 1);
  EXPECT_EQ(apiary::testing::error_code_of([&] {
              codec::scan_objects(nested(int(codec::kMaxScanDepth) + 1), {.max_depth = 1000});
            }),
            Errc::bad_message);
}

TEST(MsgpackScan, SmallContainerLimitsRefuseALyingHeaderWithoutTheScan) {
  // RPC frame headers: at most 8 elements over 2 levels, so msgpack-c's own
  // limits bound what it sizes; a header claiming 2^20 is still refused.
  codec::Limits frame_limits;
  frame_limits.max_depth = 2;
  frame_limits.max_array = 8;
  frame_limits.max_map = 0;
  const Bytes lying_array{0xdd, 0x00, 0x10, 0x00, 0x00, 0x01, 0x02, 0x03};
  EXPECT_NE(apiary::testing::error_message_of([&] {
              codec::parse(lying_array, frame_limits);
            }).find("size limit exceeded"),
            std::string::npos);
  codec::Writer w;
  w.array(3).uint(1).uint(2).array(2).uint(3).uint(4);
  EXPECT_EQ(codec::parse(w.take(), frame_limits).root().array("frame", 3, 3).size(), 3u);
}
