#include "dht/storage.hpp"

#include <algorithm>

namespace apiary::dht {

namespace {

constexpr std::size_t kEntryOverhead = 64;  // map node, expiration, source, bookkeeping

// What one item (the regular value or one subkey) costs its source and the cap.
std::size_t item_bytes(ByteSpan key, const std::optional<Bytes>& subkey,
                       std::size_t value_size) noexcept {
  return kEntryOverhead + key.size() + (subkey ? subkey->size() : 0) + value_size;
}

std::size_t value_size_of(const StoredValue& value, const std::optional<Bytes>& item) {
  if (!item) return value.regular.value.size();
  auto it = value.subkeys.find(*item);
  return it == value.subkeys.end() ? 0 : it->second.value.size();
}

bool starts_with(std::string_view text, std::string_view prefix) {
  return text.substr(0, prefix.size()) == prefix;
}

bool ends_with(std::string_view text, std::string_view suffix) {
  return text.size() >= suffix.size() && text.substr(text.size() - suffix.size()) == suffix;
}

}  // namespace

std::vector<TtlRule> apiary_ttl_rules() {
  constexpr double hour = 3600.0;
  return {
      {.key_prefix = "", .key_suffix = ".config", .max_ttl_seconds = 24 * hour},
      {.key_prefix = "", .key_suffix = ".revoked", .max_ttl_seconds = 7 * 24 * hour},
      {.key_prefix = "", .key_suffix = ".progress", .max_ttl_seconds = hour},
      {.key_prefix = "averaging:", .key_suffix = "", .max_ttl_seconds = hour},
      {.key_prefix = "apiary.experts/", .key_suffix = "", .max_ttl_seconds = hour},
  };
}

Storage::Storage(StorageLimits limits, WallClock clock)
    : limits_(std::move(limits)), clock_(std::move(clock)), quotas_(limits_.quota) {}

double Storage::max_ttl_for(ByteSpan key, const std::optional<Bytes>& subkey) const {
  const std::string_view text = as_string_view(key);
  for (const auto& rule : limits_.ttl_rules)
    if (starts_with(text, rule.key_prefix) && ends_with(text, rule.key_suffix))
      return std::min(rule.max_ttl_seconds, limits_.max_ttl_seconds);
  const bool owned = names_owner(key) || (subkey && names_owner(*subkey));
  return owned ? limits_.max_ttl_seconds
               : std::min(limits_.max_unowned_ttl_seconds, limits_.max_ttl_seconds);
}

StoreStatus Storage::store(const NodeId& key_id, ByteSpan key, const std::optional<Bytes>& subkey,
                           const Bytes& value, DhtTime expiration, const StoreSource& source) {
  if (key.size() > limits_.max_key_bytes || (subkey && subkey->size() > limits_.max_key_bytes))
    return StoreStatus::key_too_large;
  if (value.size() > limits_.max_value_bytes) return StoreStatus::value_too_large;
  const DhtTime now = clock_();
  if (!(expiration > now)) return StoreStatus::expired;  // also refuses NaN
  if (expiration > now + max_ttl_for(key, subkey) + limits_.max_clock_skew_seconds)
    return StoreStatus::too_far_in_future;

  auto it = entries_.find(key_id);
  if (it != entries_.end() && !purge_entry(it->second, now)) {
    erase(it);
    it = entries_.end();
  }
  return apply(it, key_id, key, subkey, value, expiration, source);
}

StoreStatus Storage::apply(Entries::iterator it, const NodeId& key_id, ByteSpan key,
                           const std::optional<Bytes>& subkey, const Bytes& value,
                           DhtTime expiration, const StoreSource& source) {
  std::optional<StoredValue> updated;
  if (it != entries_.end()) updated = it->second.value;
  const StoreStatus status = apply_store(updated, subkey, value, expiration);
  if (status != StoreStatus::stored) return status;
  if (updated->is_dictionary && updated->subkeys.size() > limits_.max_subkeys)
    return StoreStatus::storage_full;

  // The old items this store replaces or removes, and what they were charged.
  struct Removed {
    std::optional<Bytes> item;
    StoreSource source;
    std::size_t bytes;
  };
  std::vector<Removed> removed;
  std::size_t same_network_subkeys = 0;
  if (it != entries_.end()) {
    const StoredEntry& old = it->second;
    for (const auto& [item, item_source] : old.sources) {
      const bool survives =
          item != subkey && item && updated->is_dictionary && updated->subkeys.contains(*item);
      if (!survives) {
        removed.push_back(
            {item, item_source, item_bytes(key, item, value_size_of(old.value, item))});
      } else if (!source.is_local() && item_source.network == source.network) {
        ++same_network_subkeys;
      }
    }
  }
  std::size_t freed = 0;
  for (const auto& r : removed) {
    quotas_.refund(r.source, r.bytes);
    freed += r.bytes;
  }
  const std::size_t added = item_bytes(key, subkey, value.size());
  const bool fits = quotas_.fits(source, added) &&
                    bytes_used_ - freed + added <= limits_.max_total_bytes &&
                    (!subkey || same_network_subkeys < limits_.quota.max_subkeys_per_network);
  if (!fits) {
    for (const auto& r : removed) quotas_.charge(r.source, r.bytes);
    return StoreStatus::storage_full;
  }
  quotas_.charge(source, added);
  bytes_used_ = bytes_used_ - freed + added;
  if (it == entries_.end())
    it = entries_.emplace(key_id, StoredEntry{Bytes(key.begin(), key.end()), {}, {}}).first;
  it->second.value = std::move(*updated);
  for (const auto& r : removed) it->second.sources.erase(r.item);
  it->second.sources[subkey] = source;
  return StoreStatus::stored;
}

bool Storage::purge_entry(StoredEntry& entry, DhtTime now) {
  StoredValue& value = entry.value;
  if (!value.is_dictionary) {
    if (value.regular.expiration > now) return true;
    for (const auto& [item, source] : entry.sources) {
      const std::size_t bytes = item_bytes(entry.key, item, value.regular.value.size());
      quotas_.refund(source, bytes);
      bytes_used_ -= bytes;
    }
    entry.sources.clear();
    return false;
  }
  for (auto item = value.subkeys.begin(); item != value.subkeys.end();) {
    if (item->second.expiration > now) {
      ++item;
      continue;
    }
    const std::optional<Bytes> name = item->first;
    const std::size_t bytes = item_bytes(entry.key, name, item->second.value.size());
    if (auto source = entry.sources.find(name); source != entry.sources.end()) {
      quotas_.refund(source->second, bytes);
      entry.sources.erase(source);
    }
    bytes_used_ -= bytes;
    item = value.subkeys.erase(item);
  }
  return !value.subkeys.empty();
}

void Storage::erase(Entries::iterator it) {
  // purge_entry() refunded whatever expired; refund what is left (none today).
  for (const auto& [item, source] : it->second.sources) {
    const std::size_t bytes =
        item_bytes(it->second.key, item, value_size_of(it->second.value, item));
    quotas_.refund(source, bytes);
    bytes_used_ -= bytes;
  }
  entries_.erase(it);
}

const StoredEntry* Storage::get(const NodeId& key_id) {
  auto it = entries_.find(key_id);
  if (it == entries_.end()) return nullptr;
  if (!purge_entry(it->second, clock_())) {
    erase(it);
    return nullptr;
  }
  return &it->second;
}

void Storage::purge_expired() {
  const DhtTime now = clock_();
  for (auto it = entries_.begin(); it != entries_.end();) {
    auto next = std::next(it);
    if (!purge_entry(it->second, now)) erase(it);
    it = next;
  }
}

}  // namespace apiary::dht
