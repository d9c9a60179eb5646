#pragma once
// Local record storage of one DHT node: key id → (key bytes, StoredValue),
// with size limits, a memory cap and bounds on how far in the future an
// expiration may lie. Expired entries are purged on read and by purge_expired().
// Not thread-safe: lives on the node's network thread. Errors: refusals are
// returned as StoreStatus values, nothing is thrown.
#include "dht/id.hpp"
#include "dht/record.hpp"

#include <cstddef>
#include <optional>
#include <unordered_map>

namespace apiary::dht {

struct StorageLimits {
  std::size_t max_key_bytes = 1024;          // key and each subkey
  std::size_t max_value_bytes = 64 * 1024;   // one value
  std::size_t max_total_bytes = 256u << 20;  // memory cap of the whole store
  std::size_t max_subkeys = 4096;            // entries of one dictionary
  double max_ttl_seconds = 7 * 24 * 3600.0;  // expiration at most now + max_ttl + skew
  double max_clock_skew_seconds = 30.0;
};

struct StoredEntry {
  Bytes key;
  StoredValue value;
};

class Storage {
 public:
  explicit Storage(StorageLimits limits = {}, WallClock clock = system_dht_time);

  // Checks the limits, then applies the newest-expiration-wins rules.
  StoreStatus store(const NodeId& key_id, ByteSpan key, const std::optional<Bytes>& subkey,
                    const Bytes& value, DhtTime expiration);
  // The live value under `key_id` (expired entries dropped first).
  const StoredEntry* get(const NodeId& key_id);
  void purge_expired();

  std::size_t size() const noexcept { return entries_.size(); }
  std::size_t bytes_used() const noexcept { return bytes_used_; }
  const StorageLimits& limits() const noexcept { return limits_; }
  DhtTime now() const { return clock_(); }

 private:
  static std::size_t footprint(const StoredEntry& entry) noexcept;

  StorageLimits limits_;
  WallClock clock_;
  std::unordered_map<NodeId, StoredEntry> entries_;
  std::size_t bytes_used_ = 0;
};

}  // namespace apiary::dht
