#include "dht/storage_quota.hpp"

namespace apiary::dht {

namespace {

template <typename Map, typename Key>
QuotaLedger::Usage usage_in(const Map& map, const Key& key) {
  auto it = map.find(key);
  return it == map.end() ? QuotaLedger::Usage{} : it->second;
}

// Subtracts, dropping the entry once it holds nothing (the maps stay as small
// as the set of sources that hold records).
template <typename Map, typename Key>
void take_from(Map& map, const Key& key, std::size_t bytes) {
  auto it = map.find(key);
  if (it == map.end()) return;
  it->second.bytes -= std::min(bytes, it->second.bytes);
  it->second.records -= std::min<std::size_t>(1, it->second.records);
  if (it->second.records == 0) map.erase(it);
}

}  // namespace

bool QuotaLedger::fits(const StoreSource& source, std::size_t bytes) const {
  if (source.is_local()) return true;
  const Usage peer = usage_in(peers_, source.peer);
  const Usage network = usage_in(networks_, source.network);
  return peer.records + 1 <= limits_.max_records_per_peer &&
         peer.bytes + bytes <= limits_.max_bytes_per_peer &&
         network.records + 1 <= limits_.max_records_per_network &&
         network.bytes + bytes <= limits_.max_bytes_per_network;
}

void QuotaLedger::charge(const StoreSource& source, std::size_t bytes) {
  if (source.is_local()) return;
  for (Usage* usage : {&peers_[source.peer], &networks_[source.network]}) {
    usage->bytes += bytes;
    usage->records += 1;
  }
}

void QuotaLedger::refund(const StoreSource& source, std::size_t bytes) {
  if (source.is_local()) return;
  take_from(peers_, source.peer, bytes);
  take_from(networks_, source.network, bytes);
}

QuotaLedger::Usage QuotaLedger::of_peer(const PeerId& peer) const {
  return usage_in(peers_, peer);
}

QuotaLedger::Usage QuotaLedger::of_network(const std::string& network) const {
  return usage_in(networks_, network);
}

}  // namespace apiary::dht
