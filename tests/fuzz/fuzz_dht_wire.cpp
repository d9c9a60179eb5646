// libFuzzer target: the DHT RPC messages (dht/wire.hpp) and what a node does
// with decoded records before storing or returning them (record merge rules,
// owner-signature validation, dht/record.hpp, dht/validator.hpp). The first
// byte picks the message; only Error may come out of a decoder, and whatever
// decodes re-encodes with the production encoder to a message that decodes
// to the same values.
#include "dht/validator.hpp"
#include "dht/wire.hpp"
#include "fuzz_util.hpp"

using namespace apiary;
using namespace apiary::dht;

namespace {

bool same_items(const std::vector<wire::StoreItem>& a, const std::vector<wire::StoreItem>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (a[i].key != b[i].key || a[i].subkey != b[i].subkey || a[i].value != b[i].value ||
        a[i].expiration != b[i].expiration || a[i].in_cache != b[i].in_cache)
      return false;
  }
  return true;
}

bool same_results(const std::vector<wire::FindResult>& a, const std::vector<wire::FindResult>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (a[i].value != b[i].value || a[i].nearest != b[i].nearest) return false;
  }
  return true;
}

// What a node does with store items: validate, strip, apply to storage.
void store_items(const std::vector<wire::StoreItem>& items) {
  static const OwnerSignatureValidator validator;
  std::optional<StoredValue> slot;
  for (const auto& item : items) {
    Record record{item.key, item.subkey, item.value, item.expiration};
    if (validator.validate(record)) (void)validator.strip(record.value);
    apply_store(slot, item.subkey, item.value, item.expiration);
  }
}

// What a getter does with found values: merge them, purge expired entries.
void merge_results(const std::vector<wire::FindResult>& results) {
  std::optional<StoredValue> merged;
  for (const auto& result : results) {
    if (result.value) merge_into(merged, *result.value);
  }
  if (merged) merged->purge_expired(1.0e9);
}

void fuzz_message(std::uint8_t selector, std::size_t expected, ByteSpan message) {
  switch (selector % 6) {
    case 0:
      wire::decode_ping_request(message);
      break;
    case 1: {
      const DhtTime t = wire::decode_ping_response(message);
      const DhtTime again = wire::decode_ping_response(wire::encode_ping_response(t));
      fuzz::require(again == t || (again != again && t != t), "ping time round-trips");
      break;
    }
    case 2: {
      auto items = wire::decode_store_request(message);
      fuzz::require(
          same_items(wire::decode_store_request(wire::encode_store_request(items)), items),
          "store request round-trips");
      store_items(items);
      break;
    }
    case 3: {
      auto statuses = wire::decode_store_response(message, expected);
      auto again = wire::decode_store_response(wire::encode_store_response(statuses), expected);
      fuzz::require(again == statuses, "store response round-trips");
      break;
    }
    case 4: {
      auto ids = wire::decode_find_request(message);
      fuzz::require(wire::decode_find_request(wire::encode_find_request(ids)) == ids,
                    "find request round-trips");
      break;
    }
    default: {
      auto results = wire::decode_find_response(message, expected);
      auto again = wire::decode_find_response(wire::encode_find_response(results), expected);
      fuzz::require(same_results(again, results), "find response round-trips");
      merge_results(results);
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  fuzz::expect_only<Error>(
      [&] { fuzz_message(data[0], data[1] % 8, ByteSpan(data + 2, size - 2)); });
  return 0;
}
