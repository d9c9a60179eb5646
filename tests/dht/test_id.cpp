#include "dht/id.hpp"

#include <gtest/gtest.h>

using namespace apiary;
using namespace apiary::dht;

TEST(DhtId, KeyHashIsBlake2b160AndStable) {
  const NodeId a = NodeId::of_key(as_bytes("hello"));
  const NodeId b = NodeId::of_key(as_bytes("hello"));
  const NodeId c = NodeId::of_key(as_bytes("hellp"));
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  // BLAKE2b with a 20-byte digest of "hello" (libsodium crypto_generichash).
  EXPECT_EQ(a.to_hex().size(), 40u);
}

TEST(DhtId, XorDistanceOrdersByCommonPrefix) {
  NodeId zero;
  NodeId near = zero;
  near.set_bit(159, true);
  NodeId far = zero;
  far.set_bit(0, true);
  EXPECT_TRUE(closer(near, far, zero));
  EXPECT_FALSE(closer(far, near, zero));
  EXPECT_FALSE(closer(near, near, zero));
  EXPECT_EQ(distance(near, near), zero);
  EXPECT_EQ(common_prefix_length(zero, near), 159);
  EXPECT_EQ(common_prefix_length(zero, far), 0);
  EXPECT_EQ(common_prefix_length(zero, zero), 160);
}

TEST(DhtId, RandomIdWithPrefixKeepsPrefix) {
  const NodeId prefix = NodeId::random();
  for (int depth : {0, 1, 7, 8, 13, 159}) {
    const NodeId id = random_id_with_prefix(prefix, depth);
    EXPECT_GE(common_prefix_length(id, prefix), depth);
  }
}

TEST(DhtId, PeerRoundTrip) {
  const NodeId id = NodeId::random();
  EXPECT_EQ(NodeId::from_peer(id.to_peer()), id);
}
