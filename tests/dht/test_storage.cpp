#include "dht/storage.hpp"
#include "tests/dht/test_bytes_util.hpp"

#include <gtest/gtest.h>

#include <cmath>

using namespace apiary;
using namespace apiary::dht;

namespace {

struct FakeClock {
  double now = 1000;
  WallClock clock() {
    return [this] { return now; };
  }
};
}  // namespace

TEST(DhtStorage, StoresAndExpires) {
  FakeClock t;
  Storage s({}, t.clock());
  const NodeId id = NodeId::of_key(as_bytes("k"));
  EXPECT_EQ(s.store(id, as_bytes("k"), std::nullopt, to_bytes("v"), 1010), StoreStatus::stored);
  ASSERT_NE(s.get(id), nullptr);
  EXPECT_EQ(s.get(id)->value.regular.value, to_bytes("v"));
  EXPECT_EQ(s.get(id)->key, to_bytes("k"));
  t.now = 1010;  // expiration is exclusive
  EXPECT_EQ(s.get(id), nullptr);
  EXPECT_EQ(s.size(), 0u);
  EXPECT_EQ(s.bytes_used(), 0u);
}

TEST(DhtStorage, RefusesExpiredAndFarFutureExpirations) {
  FakeClock t;
  StorageLimits limits;
  limits.max_ttl_seconds = 100;
  limits.max_clock_skew_seconds = 5;
  Storage s(limits, t.clock());
  const NodeId id = NodeId::of_key(as_bytes("k"));
  EXPECT_EQ(s.store(id, as_bytes("k"), std::nullopt, to_bytes("v"), 999), StoreStatus::expired);
  EXPECT_EQ(s.store(id, as_bytes("k"), std::nullopt, to_bytes("v"), 1000), StoreStatus::expired);
  EXPECT_EQ(s.store(id, as_bytes("k"), std::nullopt, to_bytes("v"), 1106),
            StoreStatus::too_far_in_future);
  EXPECT_EQ(s.store(id, as_bytes("k"), std::nullopt, to_bytes("v"), 1104), StoreStatus::stored);
  EXPECT_EQ(s.store(id, as_bytes("k"), std::nullopt, to_bytes("v"), std::nan("")),
            StoreStatus::expired);
}

TEST(DhtStorage, EnforcesSizeLimitsAndMemoryCap) {
  FakeClock t;
  StorageLimits limits;
  limits.max_value_bytes = 100;
  limits.max_key_bytes = 10;
  limits.max_total_bytes = 1000;
  Storage s(limits, t.clock());
  EXPECT_EQ(s.store(NodeId::of_key(as_bytes("k")), as_bytes("k"), std::nullopt, Bytes(101), 1010),
            StoreStatus::value_too_large);
  EXPECT_EQ(s.store(NodeId::of_key(as_bytes("kkkkkkkkkkk")), as_bytes("kkkkkkkkkkk"), std::nullopt,
                    Bytes(1), 1010),
            StoreStatus::key_too_large);
  EXPECT_EQ(s.store(NodeId::of_key(as_bytes("k")), as_bytes("k"), Bytes(11), Bytes(1), 1010),
            StoreStatus::key_too_large);
  int stored = 0;
  StoreStatus last = StoreStatus::stored;
  for (int i = 0; i < 100 && last == StoreStatus::stored; ++i) {
    const std::string key = "key" + std::to_string(i);
    last = s.store(NodeId::of_key(as_bytes(key)), as_bytes(key), std::nullopt, Bytes(100), 1010);
    if (last == StoreStatus::stored) ++stored;
  }
  EXPECT_EQ(last, StoreStatus::storage_full);
  EXPECT_GT(stored, 3);
  EXPECT_LE(s.bytes_used(), 1000u);
  // Expiry frees the memory again.
  t.now = 1011;
  s.purge_expired();
  EXPECT_EQ(s.bytes_used(), 0u);
  EXPECT_EQ(s.store(NodeId::of_key(as_bytes("k")), as_bytes("k"), std::nullopt, Bytes(100), 1020),
            StoreStatus::stored);
}

TEST(DhtStorage, DictionaryMergeAndPurge) {
  FakeClock t;
  Storage s({}, t.clock());
  const NodeId id = NodeId::of_key(as_bytes("group"));
  EXPECT_EQ(s.store(id, as_bytes("group"), to_bytes("peer1"), to_bytes("a"), 1005),
            StoreStatus::stored);
  EXPECT_EQ(s.store(id, as_bytes("group"), to_bytes("peer2"), to_bytes("b"), 1020),
            StoreStatus::stored);
  EXPECT_EQ(s.store(id, as_bytes("group"), to_bytes("peer1"), to_bytes("stale"), 1001),
            StoreStatus::outdated);
  ASSERT_NE(s.get(id), nullptr);
  EXPECT_EQ(s.get(id)->value.subkeys.size(), 2u);
  t.now = 1006;
  ASSERT_NE(s.get(id), nullptr);
  EXPECT_EQ(s.get(id)->value.subkeys.size(), 1u);
  EXPECT_EQ(s.get(id)->value.subkeys.begin()->first, to_bytes("peer2"));
}
