#pragma once
// Per-source quotas of a DHT node's storage: the bytes and records that each
// peer and each network (the /24 or /64 its packets come from) may hold, so a
// stranger — who can mint identities for free but not address blocks — cannot
// fill a node's storage or a dictionary. A record is charged to its source when
// stored and refunded when it is replaced, expires or is dropped.
// Not thread-safe: lives in Storage, on the node's network thread.
// Errors: fits() answers; nothing is thrown.
#include "core/identity.hpp"

#include <cstddef>
#include <string>
#include <unordered_map>

namespace apiary::dht {

// Who asked for a store. A default-constructed source is this node itself
// (its own records and the values it caches from lookups): never charged.
struct StoreSource {
  PeerId peer;
  std::string network;  // net/admission's address_prefix(); "" for this node
  bool is_local() const noexcept { return network.empty(); }
  bool operator==(const StoreSource&) const = default;
};

struct QuotaLimits {
  std::size_t max_bytes_per_peer = 16u << 20;
  std::size_t max_records_per_peer = 4096;
  std::size_t max_bytes_per_network = 64u << 20;
  std::size_t max_records_per_network = 16384;
  // Subkeys one network may hold in one dictionary (Storage counts them).
  std::size_t max_subkeys_per_network = 1024;
};

class QuotaLedger {
 public:
  struct Usage {
    std::size_t bytes = 0;
    std::size_t records = 0;
  };

  explicit QuotaLedger(QuotaLimits limits = {}) : limits_(limits) {}

  // Would `source` stay within its quotas holding one more record of `bytes`?
  bool fits(const StoreSource& source, std::size_t bytes) const;
  void charge(const StoreSource& source, std::size_t bytes);
  void refund(const StoreSource& source, std::size_t bytes);

  Usage of_peer(const PeerId& peer) const;
  Usage of_network(const std::string& network) const;
  const QuotaLimits& limits() const noexcept { return limits_; }

 private:
  QuotaLimits limits_;
  std::unordered_map<PeerId, Usage> peers_;
  std::unordered_map<std::string, Usage> networks_;
};

}  // namespace apiary::dht
