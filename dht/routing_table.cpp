#include "dht/routing_table.hpp"

#include <algorithm>

namespace apiary::dht {

RoutingTable::RoutingTable(NodeId self, RoutingOptions options) : self_(self), options_(options) {
  buckets_.push_back(KBucket{});
}

std::size_t RoutingTable::bucket_index(const NodeId& id) const noexcept {
  for (std::size_t i = 0; i < buckets_.size(); ++i)
    if (buckets_[i].covers(id)) return i;
  return 0;  // unreachable: the buckets partition the id space
}

bool RoutingTable::can_split(const KBucket& bucket) const noexcept {
  if (bucket.depth >= NodeId::bits) return false;
  return bucket.covers(self_) || bucket.depth % options_.depth_modulo != 0;
}

void RoutingTable::split(std::size_t index) {
  KBucket low = std::move(buckets_[index]);
  KBucket high;
  high.prefix = low.prefix;
  high.prefix.set_bit(low.depth, true);
  low.depth += 1;
  high.depth = low.depth;
  high.last_updated = low.last_updated;
  auto moves_high = [&](const NodeInfo& n) { return n.id.bit(high.depth - 1); };
  for (const auto& n : low.nodes)
    if (moves_high(n)) high.nodes.push_back(n);
  std::erase_if(low.nodes, moves_high);
  for (const auto& n : low.replacements)
    if (moves_high(n)) high.replacements.push_back(n);
  std::erase_if(low.replacements, moves_high);
  // Refill each half from its replacements (freshest first).
  for (KBucket* b : {&low, &high}) {
    while (b->nodes.size() < options_.bucket_size && !b->replacements.empty()) {
      b->nodes.push_back(b->replacements.back());
      b->replacements.pop_back();
    }
  }
  buckets_[index] = std::move(low);
  buckets_.insert(buckets_.begin() + static_cast<std::ptrdiff_t>(index) + 1, std::move(high));
}

RoutingTable::AddResult RoutingTable::add_or_update(const PeerAddress& address, SteadyTime now) {
  const NodeId id = NodeId::from_peer(address.peer);
  if (id == self_) return {};
  while (true) {
    const std::size_t index = bucket_index(id);
    KBucket& bucket = buckets_[index];
    auto it = std::find_if(bucket.nodes.begin(), bucket.nodes.end(),
                           [&](const NodeInfo& n) { return n.id == id; });
    if (it != bucket.nodes.end()) {
      // Move to the most-recently-seen end; the address may have changed.
      NodeInfo info = *it;
      info.address = address;
      info.last_seen = now;
      bucket.nodes.erase(it);
      bucket.nodes.push_back(std::move(info));
      bucket.last_updated = now;
      return {.in_table = true, .ping_to_evict = std::nullopt};
    }
    if (bucket.nodes.size() < options_.bucket_size) {
      bucket.nodes.push_back(NodeInfo{id, address, now});
      bucket.last_updated = now;
      std::erase_if(bucket.replacements, [&](const NodeInfo& n) { return n.id == id; });
      return {.in_table = true, .ping_to_evict = std::nullopt};
    }
    if (can_split(bucket)) {
      split(index);
      continue;
    }
    std::erase_if(bucket.replacements, [&](const NodeInfo& n) { return n.id == id; });
    bucket.replacements.push_back(NodeInfo{id, address, now});
    if (bucket.replacements.size() > options_.replacement_size) bucket.replacements.pop_front();
    return {.in_table = false, .ping_to_evict = bucket.nodes.front()};
  }
}

void RoutingTable::remove(const NodeId& id) {
  KBucket& bucket = buckets_[bucket_index(id)];
  std::erase_if(bucket.replacements, [&](const NodeInfo& n) { return n.id == id; });
  const auto removed = std::erase_if(bucket.nodes, [&](const NodeInfo& n) { return n.id == id; });
  if (removed && !bucket.replacements.empty()) {
    bucket.nodes.push_back(bucket.replacements.back());
    bucket.replacements.pop_back();
  }
}

bool RoutingTable::contains(const NodeId& id) const {
  return find(id).has_value();
}

std::optional<NodeInfo> RoutingTable::find(const NodeId& id) const {
  const KBucket& bucket = buckets_[bucket_index(id)];
  for (const auto& n : bucket.nodes)
    if (n.id == id) return n;
  return std::nullopt;
}

std::vector<NodeInfo> RoutingTable::nearest(const NodeId& target, std::size_t count,
                                            const std::optional<NodeId>& exclude) const {
  std::vector<const NodeInfo*> all;
  for (const auto& bucket : buckets_)
    for (const auto& n : bucket.nodes)
      if (!exclude || n.id != *exclude) all.push_back(&n);
  const std::size_t take = std::min(count, all.size());
  std::partial_sort(
      all.begin(), all.begin() + static_cast<std::ptrdiff_t>(take), all.end(),
      [&](const NodeInfo* a, const NodeInfo* b) { return closer(a->id, b->id, target); });
  std::vector<NodeInfo> result;
  result.reserve(take);
  for (std::size_t i = 0; i < take; ++i) result.push_back(*all[i]);
  return result;
}

std::vector<const KBucket*> RoutingTable::stale_buckets(SteadyTime before) const {
  std::vector<const KBucket*> stale;
  for (const auto& bucket : buckets_)
    if (bucket.last_updated < before) stale.push_back(&bucket);
  return stale;
}

void RoutingTable::touch_bucket(const NodeId& id_in_bucket, SteadyTime now) {
  buckets_[bucket_index(id_in_bucket)].last_updated = now;
}

std::size_t RoutingTable::size() const noexcept {
  std::size_t total = 0;
  for (const auto& bucket : buckets_) total += bucket.nodes.size();
  return total;
}

}  // namespace apiary::dht
