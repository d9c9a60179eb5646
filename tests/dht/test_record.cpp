#include "dht/record.hpp"

#include <gtest/gtest.h>

using namespace apiary;
using namespace apiary::dht;

namespace {
Bytes b(std::string_view s) {
  return Bytes(s.begin(), s.end());
}
}  // namespace

TEST(DhtRecord, NewestExpirationWinsForRegularValues) {
  std::optional<StoredValue> v;
  EXPECT_EQ(apply_store(v, std::nullopt, b("a"), 10), StoreStatus::stored);
  EXPECT_EQ(apply_store(v, std::nullopt, b("old"), 9), StoreStatus::outdated);
  EXPECT_EQ(apply_store(v, std::nullopt, b("same-exp"), 10), StoreStatus::outdated);
  EXPECT_EQ(apply_store(v, std::nullopt, b("a"), 10), StoreStatus::stored);  // idempotent re-store
  EXPECT_EQ(v->regular.value, b("a"));
  EXPECT_EQ(apply_store(v, std::nullopt, b("new"), 11), StoreStatus::stored);
  EXPECT_EQ(v->regular.value, b("new"));
}

TEST(DhtRecord, DictionarySubkeysHaveTheirOwnExpirations) {
  std::optional<StoredValue> v;
  EXPECT_EQ(apply_store(v, b("x"), b("1"), 10), StoreStatus::stored);
  EXPECT_EQ(apply_store(v, b("y"), b("2"), 20), StoreStatus::stored);
  EXPECT_EQ(apply_store(v, b("x"), b("0"), 5), StoreStatus::outdated);
  EXPECT_EQ(apply_store(v, b("x"), b("3"), 15), StoreStatus::stored);
  ASSERT_TRUE(v->is_dictionary);
  EXPECT_EQ(v->subkeys.size(), 2u);
  EXPECT_EQ(v->subkeys.at(b("x")).value, b("3"));
  EXPECT_EQ(v->expiration(), 20);
  EXPECT_TRUE(v->purge_expired(16));
  EXPECT_EQ(v->subkeys.size(), 1u);
  EXPECT_FALSE(v->purge_expired(21));
}

TEST(DhtRecord, RegularAndDictionaryReplaceEachOtherByExpiration) {
  std::optional<StoredValue> v;
  apply_store(v, std::nullopt, b("r"), 10);
  EXPECT_EQ(apply_store(v, b("s"), b("d"), 9),
            StoreStatus::outdated);  // older than the regular value
  EXPECT_EQ(apply_store(v, b("s"), b("d"), 11),
            StoreStatus::stored);  // replaces it by a dictionary
  EXPECT_TRUE(v->is_dictionary);
  EXPECT_EQ(apply_store(v, std::nullopt, b("r2"), 11), StoreStatus::outdated);
  EXPECT_EQ(apply_store(v, std::nullopt, b("r2"), 12), StoreStatus::stored);
  EXPECT_FALSE(v->is_dictionary);
}

TEST(DhtRecord, MergeCombinesDictionariesFromSeveralNodes) {
  std::optional<StoredValue> a, b1;
  apply_store(a, b("p1"), b("A"), 10);
  apply_store(a, b("p2"), b("old"), 10);
  apply_store(b1, b("p2"), b("new"), 12);
  apply_store(b1, b("p3"), b("C"), 8);
  std::optional<StoredValue> merged;
  merge_into(merged, *a);
  merge_into(merged, *b1);
  ASSERT_TRUE(merged && merged->is_dictionary);
  EXPECT_EQ(merged->subkeys.size(), 3u);
  EXPECT_EQ(merged->subkeys.at(b("p2")).value, b("new"));
  EXPECT_EQ(merged->subkeys.at(b("p1")).value, b("A"));
}
