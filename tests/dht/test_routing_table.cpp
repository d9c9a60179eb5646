#include "dht/routing_table.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <set>

using namespace apiary;
using namespace apiary::dht;

namespace {
PeerAddress address_of(const NodeId& id, std::uint16_t port = 1) {
  return PeerAddress{id.to_peer(), "inproc", port};
}
const auto t0 = std::chrono::steady_clock::time_point{} + std::chrono::hours(1);
}  // namespace

TEST(DhtRoutingTable, AddsFindsAndIgnoresSelf) {
  const NodeId self = NodeId::random();
  RoutingTable table(self);
  EXPECT_FALSE(table.add_or_update(address_of(self), t0).in_table);
  const NodeId other = NodeId::random();
  EXPECT_TRUE(table.add_or_update(address_of(other), t0).in_table);
  EXPECT_TRUE(table.contains(other));
  EXPECT_EQ(table.size(), 1u);
  table.remove(other);
  EXPECT_FALSE(table.contains(other));
}

TEST(DhtRoutingTable, SplitsOwnRangeAndKeepsAllNearNodes) {
  const NodeId self = NodeId::random();
  RoutingTable table(self);
  std::vector<NodeId> ids;
  for (int i = 0; i < 2000; ++i) {
    ids.push_back(NodeId::random());
    table.add_or_update(address_of(ids.back()), t0);
  }
  EXPECT_GT(table.buckets().size(), 5u);
  for (const auto& bucket : table.buckets()) EXPECT_LE(bucket.nodes.size(), 20u);
  // The buckets partition the id space: every id falls in exactly one.
  for (const auto& id : ids) {
    int covering = 0;
    for (const auto& bucket : table.buckets()) covering += bucket.covers(id) ? 1 : 0;
    EXPECT_EQ(covering, 1);
  }
  // The 20 ids nearest to self are all kept (own range always splits).
  std::sort(ids.begin(), ids.end(),
            [&](const NodeId& a, const NodeId& b) { return closer(a, b, self); });
  for (int i = 0; i < 20; ++i) EXPECT_TRUE(table.contains(ids[i])) << i;
  // nearest() is sorted and matches a brute force over the table contents.
  const NodeId target = NodeId::random();
  const auto nearest = table.nearest(target, 20);
  ASSERT_EQ(nearest.size(), 20u);
  for (std::size_t i = 1; i < nearest.size(); ++i)
    EXPECT_TRUE(closer(nearest[i - 1].id, nearest[i].id, target));
}

TEST(DhtRoutingTable, DepthModuloLimitsFarSplits) {
  // Self in the lower half: the upper half (depth 1) may split (1 % 5 != 0)
  // down to depth 5, where a full bucket stops splitting.
  NodeId self;  // all zero
  RoutingTable table(self,
                     RoutingOptions{.bucket_size = 2, .depth_modulo = 5, .replacement_size = 3});
  int added = 0;
  for (int i = 0; i < 400; ++i) {
    NodeId id = NodeId::random();
    id.set_bit(0, true);
    if (table.add_or_update(address_of(id), t0).in_table) ++added;
  }
  int far_buckets = 0;
  for (const auto& bucket : table.buckets()) {
    if (!bucket.prefix.bit(0)) continue;
    ++far_buckets;
    EXPECT_LE(bucket.depth, 5);
  }
  EXPECT_EQ(far_buckets, 16);  // depths 1..5 under prefix "1": 2^4 buckets of depth 5
  EXPECT_EQ(added, 32);
}

TEST(DhtRoutingTable, FullBucketAsksToPingOldestAndPromotesReplacement) {
  NodeId self;
  RoutingTable table(self,
                     RoutingOptions{.bucket_size = 2, .depth_modulo = 1, .replacement_size = 2});
  // depth_modulo 1: far buckets never split. Fill the far half (bit0 = 1).
  std::vector<NodeId> far;
  for (int i = 0; i < 4; ++i) {
    NodeId id = NodeId::random();
    id.set_bit(0, true);
    far.push_back(id);
  }
  // Force a split of the root first so the far half is its own bucket at depth 1.
  table.add_or_update(address_of(far[0]), t0);
  table.add_or_update(address_of(far[1]), t0 + std::chrono::seconds(1));
  auto r = table.add_or_update(address_of(far[2]), t0 + std::chrono::seconds(2));
  // Root (depth 0) covers self, so it splits; depth-1 far bucket with 2 nodes is full.
  EXPECT_FALSE(r.in_table);
  ASSERT_TRUE(r.ping_to_evict.has_value());
  EXPECT_EQ(r.ping_to_evict->id, far[0]);  // least recently seen
  // A refresh of far[0] moves it to the back; next candidate to evict is far[1].
  table.add_or_update(address_of(far[0]), t0 + std::chrono::seconds(3));
  r = table.add_or_update(address_of(far[3]), t0 + std::chrono::seconds(4));
  ASSERT_TRUE(r.ping_to_evict.has_value());
  EXPECT_EQ(r.ping_to_evict->id, far[1]);
  // far[1] failed to answer: removing it promotes the freshest replacement (far[3]).
  table.remove(far[1]);
  EXPECT_TRUE(table.contains(far[3]));
  EXPECT_FALSE(table.contains(far[1]));
}

TEST(DhtRoutingTable, ReportsStaleBuckets) {
  const NodeId self = NodeId::random();
  RoutingTable table(self);
  table.add_or_update(address_of(NodeId::random()), t0);
  EXPECT_EQ(table.stale_buckets(t0 - std::chrono::seconds(1)).size(), 0u);
  EXPECT_EQ(table.stale_buckets(t0 + std::chrono::seconds(1)).size(), table.buckets().size());
}
