#pragma once
// Where a store goes (DhtNode::store_signed): records refused before any
// replica is asked, and the candidate replicas of each target in order.
// No errors.
#include "dht/storage.hpp"
#include "dht/traversal.hpp"
#include "dht/validator.hpp"

#include <optional>
#include <vector>

namespace apiary::dht {

// What every replica would refuse anyway is refused here (nullopt: go ahead).
std::optional<StoreStatus> refused_locally(const Record& r, const StorageLimits& limits,
                                           const RecordValidator& validator);

// Candidate replicas per target, nearest first; nullopt stands for this node
// (included unless in client mode).
std::vector<std::vector<std::optional<PeerAddress>>> replica_candidates(
    const TraversalResult& outcome, const std::vector<NodeId>& targets, const NodeId& self,
    bool client_mode);

}  // namespace apiary::dht
