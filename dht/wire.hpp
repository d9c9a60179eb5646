#pragma once
// Wire format of the DHT RPCs (msgpack). Every message is one msgpack array
// whose first element is the format version; decoders check types, lengths
// and limits strictly and throw apiary::Error{Errc::bad_message} on anything
// else, which the RPC layer returns to the caller as that request's error.
//
//   dht.ping   request [1]                          response [1, dht_time]
//   dht.store  request [1, [[key, subkey|nil, value, expiration, in_cache]…]]
//              response [1, [status…]]              (StoreStatus codes)
//   dht.find   request [1, [key_id…]]
//              response [1, [[value|nil, [[peer_id, host, port]…]]…]]
//              value = [0, bytes, expiration] | [1, [[subkey, bytes, expiration]…]]
//
// Senders are identified by the authenticated transport (RequestContext), not
// by anything in the body, so a request cannot claim someone else's node id.
#include "core/bytes.hpp"
#include "dht/id.hpp"
#include "dht/record.hpp"
#include "net/address.hpp"
#include "net/address_wire.hpp"

#include <optional>
#include <span>
#include <vector>

namespace apiary::dht::wire {

constexpr std::uint32_t kVersion = 1;
constexpr std::size_t kMaxItemsPerRequest = 1024;
constexpr std::size_t kMaxNodesPerResult = 64;
constexpr std::size_t kMaxHostBytes = kMaxWireHostBytes;
constexpr std::size_t kMaxBytesField = 1u << 20;
constexpr std::size_t kMaxSubkeysPerValue = 65536;

struct StoreItem {
  Bytes key;
  std::optional<Bytes> subkey;
  Bytes value;
  DhtTime expiration = 0;
  bool in_cache = false;
};

struct FindResult {
  std::optional<StoredValue> value;
  std::vector<PeerAddress> nearest;
};

Bytes encode_ping_request();
void decode_ping_request(ByteSpan message);
Bytes encode_ping_response(DhtTime dht_time);
DhtTime decode_ping_response(ByteSpan message);

Bytes encode_store_request(std::span<const StoreItem> items);
std::vector<StoreItem> decode_store_request(ByteSpan message);
Bytes encode_store_response(std::span<const StoreStatus> statuses);
std::vector<StoreStatus> decode_store_response(ByteSpan message, std::size_t expected_count);

Bytes encode_find_request(std::span<const NodeId> key_ids);
std::vector<NodeId> decode_find_request(ByteSpan message);
Bytes encode_find_response(std::span<const FindResult> results);
std::vector<FindResult> decode_find_response(ByteSpan message, std::size_t expected_count);

}  // namespace apiary::dht::wire
