#pragma once
// Local record storage of one DHT node: key id → (key bytes, StoredValue),
// with size limits, a memory cap, per-source quotas (dht/storage_quota.hpp),
// and a lifetime cap per kind of record. Expired entries are purged on read and
// by purge_expired().
// Not thread-safe: lives on the node's network thread. Errors: refusals are
// returned as StoreStatus values, nothing is thrown.
#include "dht/id.hpp"
#include "dht/record.hpp"
#include "dht/storage_quota.hpp"

#include <cstddef>
#include <map>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

namespace apiary::dht {

// The longest lifetime a kind of record may ask for: keys that start with
// `key_prefix` and end with `key_suffix` (either may be empty).
struct TtlRule {
  std::string key_prefix;
  std::string key_suffix;
  double max_ttl_seconds = 0;
};

// The kinds of records Apiary's modules store, each republished well within
// its cap: run configurations (optimizer/run_directory, republished every
// 15 minutes), revocation lists of token runs (optimizer/revocation, stored for
// 6 days so that a revocation outlasts the tokens it revokes; republished by
// the coordinator hourly), progress reports (optimizer/progress_tracker, 60 s),
// matchmaking and donor declarations (averaging/, seconds) and expert entries
// (experts/dht_directory, 75 s). Every replica enforces the same caps, so a
// stranger's record of a kind outlives its owner's republishing by an hour at
// most.
std::vector<TtlRule> apiary_ttl_rules();

struct StorageLimits {
  std::size_t max_key_bytes = 1024;          // key and each subkey
  std::size_t max_value_bytes = 64 * 1024;   // one value
  std::size_t max_total_bytes = 256u << 20;  // memory cap of the whole store
  std::size_t max_subkeys = 4096;            // entries of one dictionary
  double max_ttl_seconds = 7 * 24 * 3600.0;  // expiration at most now + max_ttl + skew
  double max_clock_skew_seconds = 30.0;
  // Records with no owner marker in key or subkey: anyone may write them.
  double max_unowned_ttl_seconds = 24 * 3600.0;
  std::vector<TtlRule> ttl_rules = apiary_ttl_rules();  // the first match applies
  QuotaLimits quota;
};

struct StoredEntry {
  Bytes key;
  StoredValue value;
  // Who stored each item (nullopt: the regular value), charged for its bytes.
  std::map<std::optional<Bytes>, StoreSource> sources;
};

class Storage {
 public:
  explicit Storage(StorageLimits limits = {}, WallClock clock = system_dht_time);

  // Checks the limits and `source`'s quotas, then applies the merge rules of
  // apply_store(). The default source is this node itself (not charged).
  StoreStatus store(const NodeId& key_id, ByteSpan key, const std::optional<Bytes>& subkey,
                    const Bytes& value, DhtTime expiration, const StoreSource& source = {});
  // The live value under `key_id` (expired entries dropped first).
  const StoredEntry* get(const NodeId& key_id);
  void purge_expired();

  // The lifetime cap for a record under `key` (`subkey`: nullopt for a regular value).
  double max_ttl_for(ByteSpan key, const std::optional<Bytes>& subkey) const;

  std::size_t size() const noexcept { return entries_.size(); }
  std::size_t bytes_used() const noexcept { return bytes_used_; }
  const QuotaLedger& quotas() const noexcept { return quotas_; }
  const StorageLimits& limits() const noexcept { return limits_; }
  DhtTime now() const { return clock_(); }

 private:
  using Entries = std::unordered_map<NodeId, StoredEntry>;
  // Drops the entry's expired items (refunding them); false when none is left.
  bool purge_entry(StoredEntry& entry, DhtTime now);
  void erase(Entries::iterator it);
  // Applies the store to the entry (new when `it` is end()) with the accounting.
  StoreStatus apply(Entries::iterator it, const NodeId& key_id, ByteSpan key,
                    const std::optional<Bytes>& subkey, const Bytes& value, DhtTime expiration,
                    const StoreSource& source);

  StorageLimits limits_;
  WallClock clock_;
  Entries entries_;
  QuotaLedger quotas_;
  std::size_t bytes_used_ = 0;
};

}  // namespace apiary::dht
