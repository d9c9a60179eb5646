#include "dht/record.hpp"

#include <algorithm>

namespace apiary::dht {

bool names_owner(ByteSpan key_or_subkey) noexcept {
  return as_string_view(key_or_subkey).find(kOwnerMarkerPrefix) != std::string_view::npos;
}

bool StoredValue::holds_owned_subkey() const noexcept {
  if (!is_dictionary) return false;
  return std::any_of(subkeys.begin(), subkeys.end(),
                     [](const auto& item) { return names_owner(item.first); });
}

DhtTime StoredValue::expiration() const noexcept {
  if (!is_dictionary) return regular.expiration;
  DhtTime latest = 0;
  for (const auto& [subkey, entry] : subkeys) latest = std::max(latest, entry.expiration);
  return latest;
}

bool StoredValue::purge_expired(DhtTime now) {
  if (!is_dictionary) return regular.expiration > now;
  std::erase_if(subkeys, [now](const auto& item) { return item.second.expiration <= now; });
  return !subkeys.empty();
}

std::string_view to_string(StoreStatus status) noexcept {
  switch (status) {
    case StoreStatus::stored:
      return "stored";
    case StoreStatus::outdated:
      return "outdated: a newer entry is already stored";
    case StoreStatus::expired:
      return "expired: expiration is not in the future";
    case StoreStatus::too_far_in_future:
      return "expiration too far in the future (beyond the maximum TTL plus clock skew)";
    case StoreStatus::value_too_large:
      return "value larger than the size limit";
    case StoreStatus::key_too_large:
      return "key or subkey larger than the size limit";
    case StoreStatus::storage_full:
      return "storage full: memory cap, dictionary size or this source's quota reached";
    case StoreStatus::invalid:
      return "rejected by a record validator (signature or schema)";
    case StoreStatus::unreachable:
      return "no replica answered";
  }
  return "unknown store status";
}

StoreStatus apply_store(std::optional<StoredValue>& existing, const std::optional<Bytes>& subkey,
                        const Bytes& value, DhtTime expiration) {
  const ValueWithExpiration entry{value, expiration};
  if (!subkey) {
    if (existing) {
      if (!existing->is_dictionary && existing->regular == entry) return StoreStatus::stored;
      if (existing->holds_owned_subkey()) return StoreStatus::outdated;
      if (existing->expiration() >= expiration) return StoreStatus::outdated;
    }
    existing = StoredValue{.is_dictionary = false, .regular = entry, .subkeys = {}};
    return StoreStatus::stored;
  }
  if (existing && !existing->is_dictionary) {
    if (!names_owner(*subkey) && existing->regular.expiration >= expiration)
      return StoreStatus::outdated;
    existing.reset();
  }
  if (!existing) existing = StoredValue{.is_dictionary = true, .regular = {}, .subkeys = {}};
  auto [it, inserted] = existing->subkeys.try_emplace(*subkey, entry);
  if (inserted || it->second == entry) return StoreStatus::stored;
  if (it->second.expiration >= expiration) return StoreStatus::outdated;
  it->second = entry;
  return StoreStatus::stored;
}

void merge_into(std::optional<StoredValue>& into, const StoredValue& other) {
  if (!other.is_dictionary) {
    apply_store(into, std::nullopt, other.regular.value, other.regular.expiration);
    return;
  }
  for (const auto& [subkey, entry] : other.subkeys)
    apply_store(into, subkey, entry.value, entry.expiration);
}

}  // namespace apiary::dht
