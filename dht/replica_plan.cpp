#include "dht/replica_plan.hpp"

namespace apiary::dht {

// Refuses locally what every replica would refuse anyway.
std::optional<StoreStatus> refused_locally(const Record& r, const StorageLimits& limits,
                                           const RecordValidator& validator) {
  if (r.key.size() > limits.max_key_bytes || (r.subkey && r.subkey->size() > limits.max_key_bytes))
    return StoreStatus::key_too_large;
  if (r.value.size() > limits.max_value_bytes) return StoreStatus::value_too_large;
  if (!validator.validate(r)) return StoreStatus::invalid;
  return std::nullopt;
}

// Candidate replicas per target, nearest first; nullopt stands for this node
// (included unless in client mode).
std::vector<std::vector<std::optional<PeerAddress>>> replica_candidates(
    const TraversalResult& outcome, const std::vector<NodeId>& targets, const NodeId& self,
    bool client_mode) {
  std::vector<std::vector<std::optional<PeerAddress>>> candidates(targets.size());
  for (std::size_t t = 0; t < targets.size(); ++t) {
    auto& list = candidates[t];
    bool self_placed = client_mode;
    for (const auto& peer : outcome.keys[t].nearest) {
      if (!self_placed && closer(self, NodeId::from_peer(peer.peer), targets[t])) {
        list.push_back(std::nullopt);
        self_placed = true;
      }
      list.push_back(peer);
    }
    if (!self_placed) list.push_back(std::nullopt);
  }
  return candidates;
}

}  // namespace apiary::dht
