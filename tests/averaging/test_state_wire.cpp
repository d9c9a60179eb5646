// State-sharing metadata on the wire: round trip, and claims that would
// allocate more than what arrived are refused before any table is built.
#include "averaging/state_wire.hpp"

#include "core/codec.hpp"
#include "tests/core/error_of.hpp"

#include <gtest/gtest.h>

namespace apiary::averaging {
namespace {

StateMeta sample_meta() {
  StateMeta meta;
  meta.epoch = 42;
  meta.metadata = Bytes{7, 8, 9};
  meta.sizes = {10, 0, 5};
  meta.chunk_elements = 4;
  meta.hashes.resize(chunk_count(meta.sizes, meta.chunk_elements));  // 3 + 0 + 2
  for (std::size_t i = 0; i < meta.hashes.size(); ++i)
    meta.hashes[i].fill(static_cast<std::uint8_t>(i));
  return meta;
}

TEST(StateWire, MetaRoundTripsAndTheTableMatchesItsCount) {
  const StateMeta meta = sample_meta();
  EXPECT_EQ(meta.hashes.size(), 5u);
  EXPECT_EQ(chunk_table(meta.sizes, meta.chunk_elements).size(), 5u);
  const StateMeta back = decode_state_meta(encode_state_meta(meta));
  EXPECT_TRUE(back.same_content(meta));
}

// A 41-byte reply claiming 2^30 elements in 1-element chunks must be refused
// by the hash count, not by running out of memory building a 24 GiB table.
TEST(StateWire, HugeClaimedChunkTableIsRefusedBeforeAllocation) {
  codec::Writer w;
  w.array(6).uint(kStateVersion).uint(1).bin(Bytes{});
  w.array(1).uint(kMaxStateElements);
  w.uint(1).bin(Bytes(32, 0));  // one hash for 2^30 chunks
  const Bytes message = w.take();
  EXPECT_LT(message.size(), 64u);
  EXPECT_EQ(testing::error_code_of([&] { decode_state_meta(message); }), Errc::bad_message);
}

TEST(StateWire, BadFieldsAreRefused) {
  StateMeta meta = sample_meta();
  meta.hashes.pop_back();  // one hash short
  EXPECT_EQ(testing::error_code_of([&] { decode_state_meta(encode_state_meta(meta)); }),
            Errc::bad_message);
  meta = sample_meta();
  meta.chunk_elements = 0;
  EXPECT_EQ(testing::error_code_of([&] { decode_state_meta(encode_state_meta(meta)); }),
            Errc::bad_message);
  meta = sample_meta();
  meta.sizes = {kMaxStateElements, 1};  // over the total
  EXPECT_EQ(testing::error_code_of([&] { decode_state_meta(encode_state_meta(meta)); }),
            Errc::bad_message);
  Bytes truncated = encode_state_meta(sample_meta());
  truncated.pop_back();
  EXPECT_EQ(testing::error_code_of([&] { decode_state_meta(truncated); }), Errc::bad_message);
}

}  // namespace
}  // namespace apiary::averaging
