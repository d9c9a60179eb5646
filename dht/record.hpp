#pragma once
// DHT records and the rules that merge them.
//
// A key holds either one regular value or a dictionary of subkeys, each entry
// with its own absolute expiration in DHT time (system clock seconds, double).
// The newest expiration wins, except that an owner-signed entry always beats a
// plain one: apply_store() is the single place that encodes these rules, used
// by local storage and by merging values found on several nodes.
// Errors: none thrown (pure value types and functions).
#include "core/bytes.hpp"
#include "core/clock.hpp"

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string_view>

namespace apiary::dht {

using DhtTime = double;  // seconds since the Unix epoch
// System clock as DHT time.
inline DhtTime system_dht_time() {
  return wall_seconds();
}

// Starts the marker "[owner:<public key>]" that makes a key or subkey writable
// only with its owner's signature (dht/validator.hpp checks the signature;
// the merge rules only need to know that a subkey is owned).
inline constexpr std::string_view kOwnerMarkerPrefix = "[owner:";
bool names_owner(ByteSpan key_or_subkey) noexcept;

struct ValueWithExpiration {
  Bytes value;
  DhtTime expiration = 0;
  bool operator==(const ValueWithExpiration&) const = default;
};

// What one key holds: a regular value or a dictionary of subkeys.
struct StoredValue {
  bool is_dictionary = false;
  ValueWithExpiration regular;                   // when !is_dictionary
  std::map<Bytes, ValueWithExpiration> subkeys;  // when is_dictionary

  // The regular value's expiration, or the latest subkey expiration.
  DhtTime expiration() const noexcept;
  // Drops dictionary entries that expired at `now`; true if anything is left.
  bool purge_expired(DhtTime now);
  // True when a subkey names an owner (its entry is owner-signed).
  bool holds_owned_subkey() const noexcept;
  bool operator==(const StoredValue&) const = default;
};

// One write as a user (or a replicating peer) asks for it.
struct Record {
  Bytes key;                    // the user's key bytes (hashed into the key id)
  std::optional<Bytes> subkey;  // nullopt: regular value
  Bytes value;
  DhtTime expiration = 0;
};

// Why a store was refused (or that it was not).
enum class StoreStatus : std::uint8_t {
  stored = 0,
  outdated = 1,           // an entry with a newer (or equal) expiration exists
  expired = 2,            // expiration not in the future
  too_far_in_future = 3,  // beyond the TTL and clock-skew bounds
  value_too_large = 4,
  key_too_large = 5,
  storage_full = 6,  // memory cap, dictionary size or the source's quota reached
  invalid = 7,       // refused by a record validator (signature, schema)
  unreachable = 8,   // (client side) no replica answered
};
std::string_view to_string(StoreStatus status) noexcept;

// Applies a store of (subkey, value, expiration) to `existing` (nullopt: the
// key is empty) by the newest-expiration-wins rules:
//  - regular store: replaces what is there when its expiration is newer than
//    the regular value's / the dictionary's latest expiration — but never a
//    dictionary holding an owned subkey (a stranger's plain value would hide
//    the owners' signed records);
//  - subkey store: creates a dictionary, or adds/updates the subkey when newer
//    than that subkey's entry, or replaces a regular value that is older; an
//    owned subkey replaces a regular value whatever its expiration (so a plain
//    value stored first with a long expiration cannot lock the owners out).
// Re-storing an identical entry (same value, same expiration) is accepted and
// changes nothing, so replication and republishing are idempotent.
// Returns stored or outdated.
StoreStatus apply_store(std::optional<StoredValue>& existing, const std::optional<Bytes>& subkey,
                        const Bytes& value, DhtTime expiration);

// Merges `other` into `into` entry by entry with apply_store (used to combine
// values found on several nodes for get(latest=true)).
void merge_into(std::optional<StoredValue>& into, const StoredValue& other);

}  // namespace apiary::dht
