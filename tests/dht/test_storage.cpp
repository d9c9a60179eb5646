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

namespace {
StoreSource source(std::uint8_t peer, std::string network) {
  StoreSource s;
  s.peer.bytes[0] = peer;
  s.network = std::move(network);
  return s;
}
}  // namespace

TEST(DhtStorage, EachPeerAndEachNetworkHasAQuota) {
  FakeClock t;
  StorageLimits limits;
  limits.quota.max_records_per_peer = 3;
  limits.quota.max_records_per_network = 5;
  Storage s(limits, t.clock());
  auto put = [&](const std::string& key, const StoreSource& from, double expiration = 1010) {
    return s.store(NodeId::of_key(as_bytes(key)), as_bytes(key), std::nullopt, to_bytes("v"),
                   expiration, from);
  };
  const auto a = source(1, "10.0.0.0/24"), b = source(2, "10.0.0.0/24"),
             c = source(3, "10.0.1.0/24");
  for (int i = 0; i < 3; ++i) EXPECT_EQ(put("a" + std::to_string(i), a), StoreStatus::stored);
  EXPECT_EQ(put("a3", a), StoreStatus::storage_full);  // the peer's quota
  EXPECT_EQ(put("b0", b), StoreStatus::stored);
  EXPECT_EQ(put("b1", b), StoreStatus::stored);
  EXPECT_EQ(put("b2", b), StoreStatus::storage_full);  // the network's quota
  EXPECT_EQ(put("c0", c), StoreStatus::stored);        // another network is unaffected
  EXPECT_EQ(put("own", StoreSource{}), StoreStatus::stored);  // this node's own: not charged
  EXPECT_EQ(s.quotas().of_network("10.0.0.0/24").records, 5u);
  // Replacing one's own record keeps the count; expiry refunds it.
  EXPECT_EQ(put("a0", a, 1011), StoreStatus::stored);
  EXPECT_EQ(s.quotas().of_peer(a.peer).records, 3u);
  t.now = 1010.5;
  s.purge_expired();
  EXPECT_EQ(s.quotas().of_peer(a.peer).records, 1u);
  EXPECT_EQ(s.quotas().of_network("10.0.0.0/24").records, 1u);
  EXPECT_EQ(put("a4", a, 1020), StoreStatus::stored);
}

TEST(DhtStorage, ARecordTakenOverByAnotherSourceMovesItsCharge) {
  FakeClock t;
  Storage s({}, t.clock());
  const auto a = source(1, "10.0.0.0/24"), b = source(2, "10.0.1.0/24");
  const NodeId id = NodeId::of_key(as_bytes("k"));
  ASSERT_EQ(s.store(id, as_bytes("k"), std::nullopt, Bytes(100), 1010, a), StoreStatus::stored);
  const std::size_t used = s.bytes_used();
  EXPECT_EQ(s.quotas().of_peer(a.peer).bytes, used);
  ASSERT_EQ(s.store(id, as_bytes("k"), to_bytes("s"), Bytes(10), 1020, b), StoreStatus::stored);
  EXPECT_EQ(s.quotas().of_peer(a.peer).records, 0u);  // its value was replaced
  EXPECT_EQ(s.quotas().of_peer(b.peer).bytes, s.bytes_used());
  t.now = 1030;
  EXPECT_EQ(s.get(id), nullptr);
  EXPECT_EQ(s.bytes_used(), 0u);
  EXPECT_EQ(s.quotas().of_peer(b.peer).records, 0u);
}

TEST(DhtStorage, OneNetworkFillsAtMostItsShareOfADictionary) {
  // Throwaway identities are free; the subkeys of one network are capped, so
  // the honest peers of other networks still find room in the dictionary.
  FakeClock t;
  StorageLimits limits;
  limits.max_subkeys = 8;
  limits.quota.max_subkeys_per_network = 3;
  Storage s(limits, t.clock());
  const NodeId id = NodeId::of_key(as_bytes("run.progress"));
  int stored = 0;
  for (std::uint8_t i = 0; i < 10; ++i)
    stored += s.store(id, as_bytes("run.progress"), to_bytes("sybil" + std::to_string(i)),
                      to_bytes("x"), 1010, source(i, "10.6.6.0/24")) == StoreStatus::stored;
  EXPECT_EQ(stored, 3);
  EXPECT_EQ(s.store(id, as_bytes("run.progress"), to_bytes("honest"), to_bytes("y"), 1010,
                    source(99, "192.0.2.0/24")),
            StoreStatus::stored);
  // Re-storing a subkey the network already holds is not a new one.
  EXPECT_EQ(s.store(id, as_bytes("run.progress"), to_bytes("sybil0"), to_bytes("x2"), 1011,
                    source(0, "10.6.6.0/24")),
            StoreStatus::stored);
}

TEST(DhtStorage, LifetimeIsCappedPerKindOfRecord) {
  FakeClock t;
  Storage s({}, t.clock());
  const std::string owner = "[owner:" + std::string(64, 'a') + "]";
  auto put = [&](const std::string& key, std::optional<Bytes> subkey, double ttl) {
    return s.store(NodeId::of_key(as_bytes(key)), as_bytes(key), subkey, to_bytes("v"),
                   t.now + ttl, source(1, "10.0.0.0/24"));
  };
  constexpr double hour = 3600, day = 24 * hour;
  EXPECT_EQ(put("free-form", std::nullopt, 2 * day), StoreStatus::too_far_in_future);
  EXPECT_EQ(put("free-form", std::nullopt, 0.5 * day), StoreStatus::stored);
  EXPECT_EQ(put("mine", to_bytes(owner), 6 * day), StoreStatus::stored);  // owned: a week
  EXPECT_EQ(put("run.config", to_bytes(owner), 2 * day), StoreStatus::too_far_in_future);
  EXPECT_EQ(put("run.config", to_bytes(owner), 12 * hour), StoreStatus::stored);
  EXPECT_EQ(put("run.progress", to_bytes(owner), 2 * hour), StoreStatus::too_far_in_future);
  EXPECT_EQ(put("averaging:run.0", to_bytes(owner), 2 * hour), StoreStatus::too_far_in_future);
  EXPECT_EQ(put("apiary.experts/ffn.", to_bytes("3" + owner), 2 * hour),
            StoreStatus::too_far_in_future);
  EXPECT_EQ(put("apiary.experts/ffn.", to_bytes("3" + owner), 120), StoreStatus::stored);
}
