#pragma once
// Iterative Kademlia lookup for many keys at once (a multi-key beam search).
//
// Per key it keeps the unvisited candidates and a beam of the `beam_size`
// nearest nodes that answered. At most `alpha` requests per key and
// `max_in_flight` in total are outstanding; one find request to a peer
// carries every unfinished key for which that peer is a pending candidate (up
// to `max_keys_per_call`), so one traversal serves many keys. A key finishes
// when `on_result` says so (e.g. a value was found) or when no unvisited
// candidate is nearer than the beam's farthest member. Peers for which
// `skip` returns true (blacklisted) are never asked. Late answers after a key
// or the traversal finished are ignored. The traversal never waits on its
// own: every request's deadline is enforced by `find` (the RPC timeout).
// Errors: `find` reports failure as nullopt; nothing here throws except
// std::bad_alloc.
#include "net/address.hpp"
#include "dht/id.hpp"
#include "dht/wire.hpp"

#include <asio/awaitable.hpp>

#include <cstddef>
#include <functional>
#include <optional>
#include <vector>

namespace apiary::dht {

struct TraversalOptions {
  std::size_t beam_size = 20;
  std::size_t alpha = 3;               // concurrent requests per key
  std::size_t max_in_flight = 32;      // concurrent requests in total
  std::size_t max_keys_per_call = 32;  // keys packed into one find request
};

// Sends one batched find; nullopt when the peer failed to answer in time.
using FindFunction = std::function<asio::awaitable<std::optional<std::vector<wire::FindResult>>>(
    const PeerAddress& peer, std::vector<NodeId> key_ids)>;
// Called for every answer about key `key_index`; returns true to finish that key.
using ResultFunction = std::function<bool(std::size_t key_index, const PeerAddress& from,
                                          const wire::FindResult& result)>;
using SkipFunction = std::function<bool(const PeerId& peer)>;

struct KeyTraversal {
  std::vector<PeerAddress> nearest;  // nodes that answered, nearest first (at most beam_size)
  int hops = 0;                      // hop count of the node that finished the key
  bool finished_by_result = false;   // on_result returned true
};

struct TraversalResult {
  std::vector<KeyTraversal> keys;  // one per target, same order
  std::size_t requests = 0;        // find requests sent
};

// The first candidates of each key (typically the routing table's nearest).
using InitialFunction = std::function<std::vector<PeerAddress>(const NodeId& target)>;

asio::awaitable<TraversalResult> traverse(std::vector<NodeId> targets, InitialFunction initial,
                                          const NodeId& self, FindFunction find,
                                          ResultFunction on_result, SkipFunction skip,
                                          TraversalOptions options = {});

}  // namespace apiary::dht
