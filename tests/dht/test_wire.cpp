#include "dht/wire.hpp"
#include "tests/dht/test_bytes_util.hpp"

#include "core/error.hpp"

#include <gtest/gtest.h>

#include <random>

using namespace apiary;
using namespace apiary::dht;

TEST(DhtWire, StoreRoundTrip) {
  std::vector<wire::StoreItem> items{{to_bytes("k1"), std::nullopt, to_bytes("v1"), 12.5, false},
                                     {to_bytes("k2"), to_bytes("sub"), to_bytes(""), 99.0, true}};
  const auto decoded = wire::decode_store_request(wire::encode_store_request(items));
  ASSERT_EQ(decoded.size(), 2u);
  EXPECT_EQ(decoded[0].key, to_bytes("k1"));
  EXPECT_FALSE(decoded[0].subkey);
  EXPECT_EQ(decoded[1].subkey, to_bytes("sub"));
  EXPECT_EQ(decoded[1].expiration, 99.0);
  EXPECT_TRUE(decoded[1].in_cache);
  std::vector<StoreStatus> statuses{StoreStatus::stored, StoreStatus::invalid};
  EXPECT_EQ(wire::decode_store_response(wire::encode_store_response(statuses), 2), statuses);
  EXPECT_THROW(wire::decode_store_response(wire::encode_store_response(statuses), 3), Error);
}

TEST(DhtWire, FindRoundTrip) {
  std::vector<NodeId> ids{NodeId::random(), NodeId::random()};
  EXPECT_EQ(wire::decode_find_request(wire::encode_find_request(ids)), ids);
  std::vector<wire::FindResult> results(2);
  results[0].value =
      StoredValue{.is_dictionary = false, .regular = {to_bytes("x"), 5}, .subkeys = {}};
  results[0].nearest.push_back(PeerAddress{NodeId::random().to_peer(), "127.0.0.1", 4242});
  StoredValue dict{.is_dictionary = true, .regular = {}, .subkeys = {}};
  dict.subkeys[to_bytes("a")] = {to_bytes("1"), 7};
  dict.subkeys[to_bytes("b")] = {to_bytes("2"), 8};
  results[1].value = dict;
  const auto decoded = wire::decode_find_response(wire::encode_find_response(results), 2);
  ASSERT_EQ(decoded.size(), 2u);
  EXPECT_EQ(decoded[0].value, results[0].value);
  EXPECT_EQ(decoded[0].nearest, results[0].nearest);
  EXPECT_EQ(decoded[1].value, results[1].value);
  EXPECT_TRUE(decoded[1].nearest.empty());
}

TEST(DhtWire, RejectsMalformedInputWithBadMessage) {
  auto expect_bad = [](const Bytes& message) {
    try {
      wire::decode_find_request(message);
      ADD_FAILURE() << "accepted malformed message";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), Errc::bad_message);
    }
  };
  expect_bad({});
  expect_bad({0xc1});                                // never-used msgpack byte
  expect_bad({0x92, 0x02, 0x90});                    // wrong version
  expect_bad({0x92, 0x01, 0x90});                    // no keys
  expect_bad({0x92, 0x01, 0x91, 0xc4, 0x01, 0x00});  // key id of 1 byte
  auto valid = wire::encode_find_request(std::vector<NodeId>{NodeId::random()});
  valid.push_back(0x00);
  expect_bad(valid);  // trailing bytes
  // Random garbage and truncations never crash and always throw Error.
  std::mt19937 rng(7);
  const auto good = wire::encode_store_request(
      std::vector<wire::StoreItem>{{to_bytes("k"), to_bytes("s"), to_bytes("v"), 1.0, false}});
  for (int i = 0; i < 2000; ++i) {
    Bytes mutated = good;
    if (i % 2)
      mutated.resize(rng() % mutated.size());
    else
      mutated[rng() % mutated.size()] = static_cast<std::uint8_t>(rng());
    try {
      wire::decode_store_request(mutated);
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), Errc::bad_message);
    }
  }
}
