#include "dht/storage.hpp"

namespace apiary::dht {

namespace {
constexpr std::size_t kEntryOverhead = 64;  // map node, expiration, bookkeeping
}

Storage::Storage(StorageLimits limits, WallClock clock)
    : limits_(limits), clock_(std::move(clock)) {}

std::size_t Storage::footprint(const StoredEntry& entry) noexcept {
  std::size_t bytes = kEntryOverhead + entry.key.size();
  if (!entry.value.is_dictionary) return bytes + entry.value.regular.value.size();
  for (const auto& [subkey, item] : entry.value.subkeys)
    bytes += kEntryOverhead + subkey.size() + item.value.size();
  return bytes;
}

StoreStatus Storage::store(const NodeId& key_id, ByteSpan key, const std::optional<Bytes>& subkey,
                           const Bytes& value, DhtTime expiration) {
  if (key.size() > limits_.max_key_bytes || (subkey && subkey->size() > limits_.max_key_bytes))
    return StoreStatus::key_too_large;
  if (value.size() > limits_.max_value_bytes) return StoreStatus::value_too_large;
  const DhtTime now = clock_();
  if (!(expiration > now)) return StoreStatus::expired;  // also refuses NaN
  if (expiration > now + limits_.max_ttl_seconds + limits_.max_clock_skew_seconds)
    return StoreStatus::too_far_in_future;

  std::optional<StoredValue> current;
  std::size_t old_bytes = 0;
  auto it = entries_.find(key_id);
  if (it != entries_.end()) {
    if (it->second.value.purge_expired(now)) current = it->second.value;
    old_bytes = footprint(it->second);
  }
  const StoreStatus status = apply_store(current, subkey, value, expiration);
  if (status != StoreStatus::stored) return status;
  if (current->is_dictionary && current->subkeys.size() > limits_.max_subkeys)
    return StoreStatus::storage_full;

  StoredEntry updated{Bytes(key.begin(), key.end()), std::move(*current)};
  const std::size_t new_bytes = footprint(updated);
  if (bytes_used_ - old_bytes + new_bytes > limits_.max_total_bytes)
    return StoreStatus::storage_full;
  bytes_used_ = bytes_used_ - old_bytes + new_bytes;
  if (it != entries_.end())
    it->second = std::move(updated);
  else
    entries_.emplace(key_id, std::move(updated));
  return StoreStatus::stored;
}

const StoredEntry* Storage::get(const NodeId& key_id) {
  auto it = entries_.find(key_id);
  if (it == entries_.end()) return nullptr;
  const std::size_t old_bytes = footprint(it->second);
  if (!it->second.value.purge_expired(clock_())) {
    bytes_used_ -= old_bytes;
    entries_.erase(it);
    return nullptr;
  }
  bytes_used_ = bytes_used_ - old_bytes + footprint(it->second);
  return &it->second;
}

void Storage::purge_expired() {
  const DhtTime now = clock_();
  for (auto it = entries_.begin(); it != entries_.end();) {
    const std::size_t old_bytes = footprint(it->second);
    if (!it->second.value.purge_expired(now)) {
      bytes_used_ -= old_bytes;
      it = entries_.erase(it);
    } else {
      bytes_used_ = bytes_used_ - old_bytes + footprint(it->second);
      ++it;
    }
  }
}

}  // namespace apiary::dht
