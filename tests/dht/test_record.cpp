#include "dht/record.hpp"
#include "tests/dht/test_bytes_util.hpp"

#include <gtest/gtest.h>

using namespace apiary;
using namespace apiary::dht;

TEST(DhtRecord, NewestExpirationWinsForRegularValues) {
  std::optional<StoredValue> v;
  EXPECT_EQ(apply_store(v, std::nullopt, to_bytes("a"), 10), StoreStatus::stored);
  EXPECT_EQ(apply_store(v, std::nullopt, to_bytes("old"), 9), StoreStatus::outdated);
  EXPECT_EQ(apply_store(v, std::nullopt, to_bytes("same-exp"), 10), StoreStatus::outdated);
  EXPECT_EQ(apply_store(v, std::nullopt, to_bytes("a"), 10),
            StoreStatus::stored);  // idempotent re-store
  EXPECT_EQ(v->regular.value, to_bytes("a"));
  EXPECT_EQ(apply_store(v, std::nullopt, to_bytes("new"), 11), StoreStatus::stored);
  EXPECT_EQ(v->regular.value, to_bytes("new"));
}

TEST(DhtRecord, DictionarySubkeysHaveTheirOwnExpirations) {
  std::optional<StoredValue> v;
  EXPECT_EQ(apply_store(v, to_bytes("x"), to_bytes("1"), 10), StoreStatus::stored);
  EXPECT_EQ(apply_store(v, to_bytes("y"), to_bytes("2"), 20), StoreStatus::stored);
  EXPECT_EQ(apply_store(v, to_bytes("x"), to_bytes("0"), 5), StoreStatus::outdated);
  EXPECT_EQ(apply_store(v, to_bytes("x"), to_bytes("3"), 15), StoreStatus::stored);
  ASSERT_TRUE(v->is_dictionary);
  EXPECT_EQ(v->subkeys.size(), 2u);
  EXPECT_EQ(v->subkeys.at(to_bytes("x")).value, to_bytes("3"));
  EXPECT_EQ(v->expiration(), 20);
  EXPECT_TRUE(v->purge_expired(16));
  EXPECT_EQ(v->subkeys.size(), 1u);
  EXPECT_FALSE(v->purge_expired(21));
}

TEST(DhtRecord, RegularAndDictionaryReplaceEachOtherByExpiration) {
  std::optional<StoredValue> v;
  apply_store(v, std::nullopt, to_bytes("r"), 10);
  EXPECT_EQ(apply_store(v, to_bytes("s"), to_bytes("d"), 9),
            StoreStatus::outdated);  // older than the regular value
  EXPECT_EQ(apply_store(v, to_bytes("s"), to_bytes("d"), 11),
            StoreStatus::stored);  // replaces it by a dictionary
  EXPECT_TRUE(v->is_dictionary);
  EXPECT_EQ(apply_store(v, std::nullopt, to_bytes("r2"), 11), StoreStatus::outdated);
  EXPECT_EQ(apply_store(v, std::nullopt, to_bytes("r2"), 12), StoreStatus::stored);
  EXPECT_FALSE(v->is_dictionary);
}

TEST(DhtRecord, MergeCombinesDictionariesFromSeveralNodes) {
  std::optional<StoredValue> a, b1;
  apply_store(a, to_bytes("p1"), to_bytes("A"), 10);
  apply_store(a, to_bytes("p2"), to_bytes("old"), 10);
  apply_store(b1, to_bytes("p2"), to_bytes("new"), 12);
  apply_store(b1, to_bytes("p3"), to_bytes("C"), 8);
  std::optional<StoredValue> merged;
  merge_into(merged, *a);
  merge_into(merged, *b1);
  ASSERT_TRUE(merged && merged->is_dictionary);
  EXPECT_EQ(merged->subkeys.size(), 3u);
  EXPECT_EQ(merged->subkeys.at(to_bytes("p2")).value, to_bytes("new"));
  EXPECT_EQ(merged->subkeys.at(to_bytes("p1")).value, to_bytes("A"));
}

namespace {
// A subkey that names an owner, as OwnerSignatureValidator::owner_marker builds it.
Bytes owned(std::string_view name) {
  return to_bytes(std::string(name) + "[owner:" + std::string(64, 'a') + "]");
}
}  // namespace

TEST(DhtRecord, AnOwnedSubkeyReplacesAPlainValueWhateverItsExpiration) {
  // A stranger's plain value stored first, with a week's expiration, must not
  // lock out the owner's signed entry (the "<run>.config" attack).
  std::optional<StoredValue> v;
  ASSERT_EQ(apply_store(v, std::nullopt, to_bytes("x"), 604000), StoreStatus::stored);
  EXPECT_EQ(apply_store(v, owned("cfg"), to_bytes("signed"), 100), StoreStatus::stored);
  ASSERT_TRUE(v->is_dictionary);
  EXPECT_EQ(v->subkeys.at(owned("cfg")).value, to_bytes("signed"));
  // An unowned subkey still obeys newest-expiration-wins against a plain value.
  std::optional<StoredValue> w;
  apply_store(w, std::nullopt, to_bytes("x"), 604000);
  EXPECT_EQ(apply_store(w, to_bytes("plain"), to_bytes("y"), 100), StoreStatus::outdated);
}

TEST(DhtRecord, APlainValueNeverReplacesADictionaryHoldingOwnedSubkeys) {
  std::optional<StoredValue> v;
  ASSERT_EQ(apply_store(v, owned("p"), to_bytes("report"), 10), StoreStatus::stored);
  EXPECT_EQ(apply_store(v, std::nullopt, to_bytes("x"), 604000), StoreStatus::outdated);
  EXPECT_TRUE(v->is_dictionary);
  // A dictionary of plain subkeys is still replaced by a newer plain value.
  std::optional<StoredValue> w;
  apply_store(w, to_bytes("s"), to_bytes("d"), 10);
  EXPECT_EQ(apply_store(w, std::nullopt, to_bytes("x"), 20), StoreStatus::stored);
  EXPECT_FALSE(w->is_dictionary);
}

TEST(DhtRecord, MergingAPlainValueWithOwnedEntriesKeepsTheOwnedOnesInEitherOrder) {
  StoredValue plain{.is_dictionary = false, .regular = {to_bytes("x"), 604000}, .subkeys = {}};
  StoredValue signed_dict{.is_dictionary = true, .regular = {}, .subkeys = {}};
  signed_dict.subkeys.emplace(owned("cfg"), ValueWithExpiration{to_bytes("signed"), 100});
  std::optional<StoredValue> a, b;
  merge_into(a, plain);
  merge_into(a, signed_dict);
  merge_into(b, signed_dict);
  merge_into(b, plain);
  ASSERT_TRUE(a && b);
  EXPECT_EQ(*a, signed_dict);
  EXPECT_EQ(*b, signed_dict);
}
