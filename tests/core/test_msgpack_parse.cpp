// core/msgpack_parse: one pass builds msgpack-c's object tree, and what a
// message can make it allocate is bounded by its length and by the caller's
// object budget; where msgpack-c's own unpacker is safe (small limits) the
// two agree on every input.
#include "core/codec.hpp"
#include "core/msgpack_parse.hpp"
#include "tests/core/error_of.hpp"

#include <gtest/gtest.h>

#include <optional>
#include <random>
#include <vector>

using namespace apiary;

namespace {

Bytes encoded_sample() {
  codec::Writer w;
  w.array(4).uint(70000).map(1).str("k").sint(-40000);
  w.array(2).f64(0.5).bin(Bytes(300, 7));
  w.str(std::string(40, 'x'));
  return w.take();
}

codec::Limits with_objects(std::size_t max_objects) {
  codec::Limits limits;
  limits.max_objects = max_objects;
  return limits;
}

// [[[…[1]…]]] nested `levels` deep.
Bytes nested(int levels) {
  Bytes bytes(static_cast<std::size_t>(levels), 0x91);
  bytes.push_back(0x01);
  return bytes;
}

std::string packed(const msgpack::object& object) {
  msgpack::sbuffer buffer;
  msgpack::pack(buffer, object);
  return std::string(buffer.data(), buffer.size());
}

}  // namespace

TEST(MsgpackParse, CountsEveryValueKeyAndElementAgainstTheBudget) {
  // root array, uint, map, key, value, inner array, f64, bin, str
  EXPECT_NO_THROW(codec::parse(encoded_sample(), with_objects(9)));
  EXPECT_NE(apiary::testing::error_message_of([&] {
              codec::parse(encoded_sample(), with_objects(8));
            }).find("more than 8 objects"),
            std::string::npos);
  const Bytes scalar{0x2a};
  EXPECT_EQ(codec::parse(scalar, with_objects(1)).root().uint("scalar"), 42u);
}

TEST(MsgpackParse, BuildsTheValuesMsgpackCWould) {
  const Bytes wire = encoded_sample();
  const codec::Document doc = codec::parse(wire);
  codec::ArrayReader top = doc.root().array("top", 4, 4);
  EXPECT_EQ(top.next().uint("u"), 70000u);
  codec::MapReader map = top.next().map("map", 1);
  EXPECT_EQ(map.at("k").sint("v"), -40000);
  codec::ArrayReader inner = top.next().array("inner", 2, 2);
  EXPECT_EQ(inner.next().f64("f"), 0.5);
  const ByteSpan bin = inner.next().bin("bin", 300, 300);
  EXPECT_EQ(bin.data(), wire.data() + wire.size() - 42 - 300);  // referenced, not copied
  EXPECT_EQ(top.next().str("str", 40), std::string(40, 'x'));
}

TEST(MsgpackParse, RefusesAContainerClaimingMoreElementsThanBytesFollow) {
  // array32 claiming 2^20 elements followed by 3 bytes: msgpack-c would size a
  // 16 MiB table from the header before noticing the truncation.
  const Bytes lying_array{0xdd, 0x00, 0x10, 0x00, 0x00, 0x01, 0x02, 0x03};
  EXPECT_NE(
      apiary::testing::error_message_of([&] { codec::parse(lying_array); }).find("claims 1048576"),
      std::string::npos);
  const Bytes lying_map{0xdf, 0x00, 0x00, 0x01, 0x00, 0x01, 0x02};  // 256 pairs, 2 bytes
  EXPECT_EQ(apiary::testing::error_code_of([&] { codec::parse(lying_map); }), Errc::bad_message);
  // Nested headers each claiming the maximum cannot multiply it either.
  Bytes nested_claims;
  for (int i = 0; i < 12; ++i) nested_claims.insert(nested_claims.end(), {0xdc, 0xff, 0xff});
  EXPECT_EQ(apiary::testing::error_code_of([&] { codec::parse(nested_claims); }),
            Errc::bad_message);
}

TEST(MsgpackParse, EnforcesTheObjectBudgetOfTheMessagesPurpose) {
  codec::Writer w;
  w.array(5000);
  for (int i = 0; i < 5000; ++i) w.uint(1);
  const Bytes many = w.take();
  EXPECT_NE(apiary::testing::error_message_of([&] {
              codec::parse(many, with_objects(4096));
            }).find("more than 4096"),
            std::string::npos);
  EXPECT_EQ(codec::parse(many, with_objects(5001)).root().array("many", 5000, 5000).size(), 5000u);
}

TEST(MsgpackParse, ReportsTruncationReservedBytesExtAndTrailingBytes) {
  const Bytes truncated_str{0xd9, 0x10, 'a', 'b'};
  EXPECT_NE(
      apiary::testing::error_message_of([&] { codec::parse(truncated_str); }).find("truncated"),
      std::string::npos);
  const Bytes reserved{0x92, 0x01, 0xc1};
  EXPECT_NE(apiary::testing::error_message_of([&] { codec::parse(reserved); }).find("0xc1"),
            std::string::npos);
  const Bytes truncated_int{0xcf, 0x00, 0x01};
  EXPECT_NE(
      apiary::testing::error_message_of([&] { codec::parse(truncated_int); }).find("truncated"),
      std::string::npos);
  const Bytes fixext{0xd4, 0x01, 0x02};
  EXPECT_NE(apiary::testing::error_message_of([&] { codec::parse(fixext); }).find("ext"),
            std::string::npos);
  const Bytes trailing{0x01, 0x02, 0x03};
  EXPECT_NE(
      apiary::testing::error_message_of([&] { codec::parse(trailing); }).find("2 trailing bytes"),
      std::string::npos);
}

TEST(MsgpackParse, NestingFollowsMsgpackCsRuleAndIsCappedByTheStack) {
  codec::Limits limits;
  limits.max_depth = 8;
  EXPECT_NO_THROW(codec::parse(nested(8), limits));
  EXPECT_NE(apiary::testing::error_message_of([&] {
              codec::parse(nested(9), limits);
            }).find("nesting too deep"),
            std::string::npos);
  // An empty container counts as a level too (msgpack-c checks it).
  Bytes empty_inside(8, 0x91);
  empty_inside.push_back(0x90);
  EXPECT_EQ(apiary::testing::error_code_of([&] { codec::parse(empty_inside, limits); }),
            Errc::bad_message);
  // A limit above the parser's stack is the stack's size, never an overflow.
  limits.max_depth = 1000;
  EXPECT_NO_THROW(codec::parse(nested(int(codec::kMaxParseDepth)), limits));
  EXPECT_EQ(apiary::testing::error_code_of(
                [&] { codec::parse(nested(int(codec::kMaxParseDepth) + 1), limits); }),
            Errc::bad_message);
}

TEST(MsgpackParse, SizeLimitsRefuseALyingHeaderBeforeTheClaimCheck) {
  // RPC frame headers: at most 8 elements over 2 levels.
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

// With small limits msgpack-c's unpacker cannot be made to allocate much, so
// it is a safe oracle: on mutations of valid messages both accept the same
// inputs and build equal objects.
TEST(MsgpackParse, AgreesWithMsgpackCsUnpackerOnMutatedMessages) {
  codec::Limits limits;
  limits.max_depth = 6;
  limits.max_array = 40;
  limits.max_map = 20;
  limits.max_str = 48;
  limits.max_bin = 64;
  limits.max_objects = 1u << 20;  // no budget: msgpack-c has none
  const msgpack::unpack_limit oracle_limit(limits.max_array, limits.max_map, limits.max_str,
                                           limits.max_bin, 0, limits.max_depth);
  std::vector<Bytes> seeds;
  {
    codec::Writer w;
    w.array(6).uint(1).sint(-3).sint(-200000).f32(1.5f).f64(-2.25).nil();
    seeds.push_back(w.take());
    w.map(2).str("ab").array(2).boolean(true).boolean(false).uint(1ull << 40).bin(Bytes(20, 1));
    seeds.push_back(w.take());
    w.array(3).str(std::string(33, 'q')).uint(300).array(1).map(1).uint(7).sint(-7);
    seeds.push_back(w.take());
  }
  std::mt19937 random(12345);
  int accepted = 0;
  int refused = 0;
  for (int i = 0; i < 20000; ++i) {
    Bytes input = seeds[random() % seeds.size()];
    const int edits = 1 + static_cast<int>(random() % 4);
    for (int e = 0; e < edits; ++e) {
      const std::size_t at = random() % input.size();
      switch (random() % 3) {
        case 0:
          input[at] = static_cast<std::uint8_t>(random());
          break;
        case 1:
          input.erase(input.begin() + static_cast<std::ptrdiff_t>(at));
          break;
        default:
          input.insert(input.begin() + static_cast<std::ptrdiff_t>(at),
                       static_cast<std::uint8_t>(random()));
      }
      if (input.empty()) input.push_back(0x90);
    }
    std::optional<msgpack::object_handle> oracle;
    try {
      std::size_t offset = 0;
      auto handle = msgpack::unpack(reinterpret_cast<const char*>(input.data()), input.size(),
                                    offset, nullptr, nullptr, oracle_limit);
      if (offset == input.size()) oracle = std::move(handle);
    } catch (const std::exception&) {
    }
    std::optional<codec::Document> ours;
    try {
      ours.emplace(codec::parse(input, limits));
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), Errc::bad_message);
    }
    ASSERT_EQ(oracle.has_value(), ours.has_value()) << "input " << i;
    if (ours) {
      // Compared re-encoded: object== says NaN != NaN.
      ASSERT_EQ(packed(oracle->get()), packed(ours->root().object())) << "input " << i;
      ++accepted;
    } else {
      ++refused;
    }
  }
  // The mutations exercise both sides.
  EXPECT_GT(accepted, 1000);
  EXPECT_GT(refused, 1000);
}
