#pragma once
// Kademlia routing table: k-buckets over the 160-bit id space.
//
// Each bucket covers the ids sharing a `depth`-bit prefix. A full bucket splits
// when it covers the node's own id, or when depth % depth_modulo != 0 (the
// relaxed rule of Kademlia §4.2, as in hivemind), so the table stays detailed
// near the own id and still learns some far-away structure. Otherwise the new
// node waits in the bucket's replacement cache and the caller is told to ping
// the least-recently-seen node: if that one is dead, remove() promotes a
// replacement. Buckets untouched for a while are reported by stale_buckets().
// Not thread-safe: lives on the node's network thread. Errors: none thrown.
#include "net/address.hpp"
#include "dht/id.hpp"

#include <chrono>
#include <cstddef>
#include <deque>
#include <optional>
#include <vector>

namespace apiary::dht {

using SteadyTime = std::chrono::steady_clock::time_point;

struct NodeInfo {
  NodeId id;
  PeerAddress address;
  SteadyTime last_seen{};
};

struct RoutingOptions {
  std::size_t bucket_size = 20;       // k
  int depth_modulo = 5;               // b
  std::size_t replacement_size = 20;  // per bucket
};

struct KBucket {
  NodeId prefix;  // bits beyond `depth` are zero
  int depth = 0;
  std::vector<NodeInfo> nodes;        // least recently seen first
  std::deque<NodeInfo> replacements;  // most recently seen last
  SteadyTime last_updated{};

  bool covers(const NodeId& id) const noexcept { return common_prefix_length(prefix, id) >= depth; }
};

class RoutingTable {
 public:
  explicit RoutingTable(NodeId self, RoutingOptions options = {});

  struct AddResult {
    bool in_table = false;                  // added or refreshed
    std::optional<NodeInfo> ping_to_evict;  // full bucket: ping this least-recently-seen node
  };
  // Records that `address` answered or called us at `now`. The own id is ignored.
  AddResult add_or_update(const PeerAddress& address, SteadyTime now);
  // Drops a node (it failed to answer); promotes the freshest replacement.
  void remove(const NodeId& id);
  bool contains(const NodeId& id) const;
  std::optional<NodeInfo> find(const NodeId& id) const;

  // Up to `count` nodes nearest to `target` by XOR distance, nearest first.
  std::vector<NodeInfo> nearest(const NodeId& target, std::size_t count,
                                const std::optional<NodeId>& exclude = std::nullopt) const;
  // Buckets with no update since `before` (refresh them with a lookup of a random id in range).
  std::vector<const KBucket*> stale_buckets(SteadyTime before) const;
  void touch_bucket(const NodeId& id_in_bucket, SteadyTime now);

  std::size_t size() const noexcept;
  const std::vector<KBucket>& buckets() const noexcept { return buckets_; }
  const NodeId& self() const noexcept { return self_; }

 private:
  std::size_t bucket_index(const NodeId& id) const noexcept;
  bool can_split(const KBucket& bucket) const noexcept;
  void split(std::size_t index);

  NodeId self_;
  RoutingOptions options_;
  std::vector<KBucket> buckets_;
};

}  // namespace apiary::dht
