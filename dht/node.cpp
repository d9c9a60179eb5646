#include "dht/node.hpp"

#include "core/async.hpp"
#include "core/log.hpp"
#include "dht/replica_plan.hpp"
#include "dht/wire.hpp"

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/redirect_error.hpp>
#include <asio/use_awaitable.hpp>

#include <algorithm>
#include <sstream>

namespace apiary::dht {

namespace {

constexpr std::string_view kPing = "dht.ping";
constexpr std::string_view kStore = "dht.store";
constexpr std::string_view kFind = "dht.find";

using Handler = asio::awaitable<Bytes> (DhtNode::*)(const rpc::RequestContext&, Bytes);

// Errors that say the peer is gone or overloaded (as opposed to refusing a request).
bool is_network_failure(Errc code) {
  return code == Errc::unavailable || code == Errc::deadline_exceeded ||
         code == Errc::connection_closed || code == Errc::cancelled || code == Errc::bad_message ||
         code == Errc::internal;
}

}  // namespace

// Copies the request context into the coroutine frame and keeps the node alive.
static asio::awaitable<Bytes> dispatch(std::weak_ptr<DhtNode> weak, rpc::RequestContext ctx,
                                       Bytes request, Handler handler) {
  auto self = weak.lock();
  if (!self) throw Error(Errc::unavailable, "dht node is shutting down");
  co_return co_await ((*self).*handler)(ctx, std::move(request));
}

std::shared_ptr<DhtNode> DhtNode::create(std::shared_ptr<rpc::RpcNode> rpc, DhtOptions options) {
  std::shared_ptr<DhtNode> node(new DhtNode(std::move(rpc), std::move(options)));
  if (!node->options_.client_mode) node->register_methods();
  node->start_maintenance();
  return node;
}

DhtNode::DhtNode(std::shared_ptr<rpc::RpcNode> rpc, DhtOptions options)
    : rpc_(std::move(rpc)),
      options_(std::move(options)),
      id_(NodeId::from_peer(rpc_->peer_id())),
      validator_(options_.validator ? options_.validator
                                    : std::make_shared<OwnerSignatureValidator>()),
      table_(id_, options_.routing),
      storage_(options_.storage, options_.clock.wall),
      cache_(options_.cache, options_.clock.wall),
      blacklist_(options_.blacklist_time, options_.blacklist_backoff_rate) {
  if (options_.num_replicas == 0)
    throw Error(Errc::invalid_argument, "dht: num_replicas must be at least 1");
  if (options_.traversal.beam_size < options_.num_replicas)
    options_.traversal.beam_size = options_.num_replicas;
}

DhtNode::~DhtNode() {
  stop();
}

void DhtNode::register_methods() {
  std::weak_ptr<DhtNode> weak = weak_from_this();
  auto bind = [weak](Handler handler) {
    return [weak, handler](const rpc::RequestContext& ctx, Bytes request) {
      return dispatch(weak, ctx, std::move(request), handler);
    };
  };
  rpc_->add_method(std::string(kPing), bind(&DhtNode::handle_ping));
  rpc_->add_method(std::string(kStore), bind(&DhtNode::handle_store));
  rpc_->add_method(std::string(kFind), bind(&DhtNode::handle_find));
}

void DhtNode::start_maintenance() {
  maintenance_timer_ = std::make_shared<asio::steady_timer>(rpc_->get_executor());
  asio::co_spawn(
      rpc_->get_executor(),
      [weak = weak_from_this(), timer = maintenance_timer_]() -> asio::awaitable<void> {
        while (true) {
          std::chrono::milliseconds interval{0};
          {
            auto self = weak.lock();
            if (!self || self->stopped_) co_return;
            interval = self->options_.maintenance_interval;
          }
          timer->expires_after(interval);
          std::error_code ec;
          co_await timer->async_wait(asio::redirect_error(asio::use_awaitable, ec));
          auto self = weak.lock();
          if (!self || self->stopped_) co_return;
          try {
            co_await self->maintenance_step();
          } catch (const std::exception& e) {
            log::warn("dht maintenance: {}", e.what());
          }
        }
      },
      asio::detached);
}

void DhtNode::stop() {
  stopped_ = true;
  if (maintenance_timer_) maintenance_timer_->cancel();
}

DhtStats DhtNode::stats() const {
  return DhtStats{.routing_table_size = table_.size(),
                  .records = storage_.size(),
                  .cached_records = cache_.size(),
                  .storage_bytes = storage_.bytes_used(),
                  .requests_served = requests_served_,
                  .blacklisted = blacklist_.size()};
}

// ---- peers ----------------------------------------------------------------------

void DhtNode::on_peer_seen(const PeerAddress& peer) {
  const auto result = table_.add_or_update(peer, options_.clock.now());
  if (!result.ping_to_evict || stopped_) return;
  // Full bucket: keep the old node if it still answers (Kademlia prefers long-lived nodes).
  const NodeInfo oldest = *result.ping_to_evict;
  if (!pinging_.insert(oldest.id).second) return;
  asio::co_spawn(
      rpc_->get_executor(),
      [self = shared_from_this(), oldest]() -> asio::awaitable<void> {
        co_await self->ping(oldest.address);  // failure removes it and promotes a replacement
        self->pinging_.erase(oldest.id);
      },
      asio::detached);
}

void DhtNode::on_peer_answered(const PeerAddress& peer) {
  blacklist_.register_success(peer.peer);
  on_peer_seen(peer);
}

void DhtNode::on_peer_failed(const PeerAddress& peer) {
  blacklist_.register_failure(peer.peer, options_.clock.now());
  table_.remove(NodeId::from_peer(peer.peer));
}

void DhtNode::learn_caller(const rpc::RequestContext& ctx) {
  ++requests_served_;
  // Client-mode callers have no reply address and never enter the table.
  if (ctx.reply_address && ctx.reply_address->peer == ctx.peer) on_peer_seen(*ctx.reply_address);
}

asio::awaitable<std::optional<Bytes>> DhtNode::call(const PeerAddress& to, std::string_view method,
                                                    Bytes request) {
  try {
    Bytes response =
        co_await rpc_->call(to, method, std::move(request), rpc::CallOptions{options_.rpc_timeout});
    on_peer_answered(to);
    co_return response;
  } catch (const Error& e) {
    log::debug("dht {} to {} failed: {}", method, to.to_string(), e.what());
    if (is_network_failure(e.code())) on_peer_failed(to);
  } catch (const std::exception& e) {
    log::debug("dht {} to {} failed: {}", method, to.to_string(), e.what());
    on_peer_failed(to);
  }
  co_return std::nullopt;
}

asio::awaitable<std::optional<std::vector<wire::FindResult>>> DhtNode::call_find(
    const PeerAddress& to, std::vector<NodeId> key_ids) {
  const std::size_t count = key_ids.size();
  Bytes request = wire::encode_find_request(key_ids);
  auto response = co_await call(to, kFind, std::move(request));
  if (!response) co_return std::nullopt;
  try {
    co_return wire::decode_find_response(*response, count);
  } catch (const Error& e) {
    log::debug("dht find answer from {} rejected: {}", to.to_string(), e.what());
    on_peer_failed(to);
    co_return std::nullopt;
  }
}

asio::awaitable<bool> DhtNode::ping(PeerAddress peer) {
  Bytes request = wire::encode_ping_request();
  auto response = co_await call(peer, kPing, std::move(request));
  if (!response) co_return false;
  try {
    wire::decode_ping_response(*response);
    co_return true;
  } catch (const Error&) {
    on_peer_failed(peer);
    co_return false;
  }
}

// ---- handlers -------------------------------------------------------------------

asio::awaitable<Bytes> DhtNode::handle_ping(const rpc::RequestContext& ctx, Bytes request) {
  learn_caller(ctx);
  wire::decode_ping_request(request);
  co_return wire::encode_ping_response(options_.clock.wall_now());
}

asio::awaitable<Bytes> DhtNode::handle_store(const rpc::RequestContext& ctx, Bytes request) {
  learn_caller(ctx);
  const auto items = wire::decode_store_request(request);
  // Charged to the caller's identity and network; a network is never "" (this
  // node's own, uncharged source) for a remote caller.
  const StoreSource source{ctx.peer, ctx.network.empty() ? std::string("?") : ctx.network};
  std::vector<StoreStatus> statuses;
  statuses.reserve(items.size());
  for (const auto& item : items)
    statuses.push_back(
        store_locally(Record{item.key, item.subkey, item.value, item.expiration}, item.in_cache,
                      source));
  co_return wire::encode_store_response(statuses);
}

asio::awaitable<Bytes> DhtNode::handle_find(const rpc::RequestContext& ctx, Bytes request) {
  learn_caller(ctx);
  const auto key_ids = wire::decode_find_request(request);
  std::vector<wire::FindResult> results;
  results.reserve(key_ids.size());
  const NodeId caller = NodeId::from_peer(ctx.peer);
  const std::size_t count = std::min(options_.routing.bucket_size, wire::kMaxNodesPerResult);
  for (const auto& key_id : key_ids) {
    wire::FindResult result;
    result.value = local_value(key_id);
    for (const auto& node : table_.nearest(key_id, count, caller))
      result.nearest.push_back(node.address);
    results.push_back(std::move(result));
  }
  co_return wire::encode_find_response(results);
}

// ---- local records ----------------------------------------------------------------

StoreStatus DhtNode::store_locally(const Record& record, bool in_cache,
                                   const StoreSource& source) {
  if (record.key.size() > options_.storage.max_key_bytes) return StoreStatus::key_too_large;
  if (!validator_->validate(record)) return StoreStatus::invalid;
  Storage& target = in_cache ? cache_ : storage_;
  return target.store(NodeId::of_key(record.key), record.key, record.subkey, record.value,
                      record.expiration, source);
}

std::optional<StoredValue> DhtNode::local_value(const NodeId& key_id) {
  std::optional<StoredValue> value;
  if (const StoredEntry* entry = storage_.get(key_id)) value = entry->value;
  if (const StoredEntry* entry = cache_.get(key_id)) merge_into(value, entry->value);
  return value;
}

std::optional<StoredValue> DhtNode::validated(const Bytes& key, const StoredValue& value) const {
  const DhtTime now = options_.clock.wall_now();
  if (!value.is_dictionary) {
    if (value.regular.expiration <= now) return std::nullopt;
    if (!validator_->validate(
            Record{key, std::nullopt, value.regular.value, value.regular.expiration}))
      return std::nullopt;
    return value;
  }
  StoredValue kept{.is_dictionary = true, .regular = {}, .subkeys = {}};
  for (const auto& [subkey, entry] : value.subkeys) {
    if (entry.expiration <= now) continue;
    if (validator_->validate(Record{key, subkey, entry.value, entry.expiration}))
      kept.subkeys.emplace(subkey, entry);
  }
  if (kept.subkeys.empty()) return std::nullopt;
  return kept;
}

StoredValue DhtNode::stripped(StoredValue value) const {
  if (!value.is_dictionary) {
    value.regular.value = validator_->strip(std::move(value.regular.value));
  } else {
    for (auto& [subkey, entry] : value.subkeys)
      entry.value = validator_->strip(std::move(entry.value));
  }
  return value;
}

// ---- lookups --------------------------------------------------------------------

asio::awaitable<TraversalResult> DhtNode::lookup(std::vector<NodeId> targets,
                                                 ResultFunction on_result, std::size_t beam_size) {
  // GCC 12 destroys some temporaries of a co_await full-expression twice, so the
  // callbacks (which own shared_ptrs) are named locals handed over with std::move.
  auto self = shared_from_this();
  TraversalOptions traversal = options_.traversal;
  if (beam_size > 0) traversal.beam_size = beam_size;
  const std::size_t beam = options_.traversal.beam_size;
  InitialFunction initial = [self, beam](const NodeId& target) {
    std::vector<PeerAddress> peers;
    for (const auto& node : self->table_.nearest(target, beam)) peers.push_back(node.address);
    return peers;
  };
  FindFunction find = [self](const PeerAddress& peer, std::vector<NodeId> key_ids) {
    return self->call_find(peer, std::move(key_ids));
  };
  SkipFunction skip = [self](const PeerId& peer) {
    return self->blacklist_.is_banned(peer, self->options_.clock.now());
  };
  TraversalResult result =
      co_await traverse(std::move(targets), std::move(initial), id_, std::move(find),
                        std::move(on_result), std::move(skip), traversal);
  co_return result;
}

namespace {
bool never_finish(std::size_t, const PeerAddress&, const wire::FindResult&) {
  return false;
}
}  // namespace

asio::awaitable<std::vector<PeerAddress>> DhtNode::find_nearest_nodes(NodeId target,
                                                                      std::size_t count) {
  std::vector<NodeId> targets(1, target);  // (a braced list here trips a GCC 12 coroutine bug)
  ResultFunction on_result = never_finish;
  auto result = co_await lookup(std::move(targets), std::move(on_result));
  auto nearest = std::move(result.keys.front().nearest);
  if (nearest.size() > count) nearest.resize(count);
  co_return nearest;
}

asio::awaitable<std::optional<StoredValue>> DhtNode::get(Bytes key, bool latest) {
  std::vector<Bytes> keys;
  keys.push_back(std::move(key));
  auto results = co_await get_many(std::move(keys), latest);
  co_return std::move(results.front().value);
}

asio::awaitable<std::vector<GetResult>> DhtNode::get_many(std::vector<Bytes> keys, bool latest) {
  std::vector<GetResult> results(keys.size());
  std::vector<std::optional<StoredValue>> found(keys.size());
  std::vector<NodeId> targets;
  std::vector<std::size_t> target_index;  // traversal key → index in `keys`
  for (std::size_t i = 0; i < keys.size(); ++i) {
    const NodeId key_id = NodeId::of_key(keys[i]);
    if (auto local = local_value(key_id)) found[i] = validated(keys[i], *local);
    if (found[i] && !latest) continue;
    targets.push_back(key_id);
    target_index.push_back(i);
  }

  if (!targets.empty()) {
    std::vector<std::vector<PeerAddress>> lacked(targets.size());
    auto self = shared_from_this();
    ResultFunction on_result = [self, &keys, &found, &target_index, &lacked, latest](
                                   std::size_t t, const PeerAddress& from,
                                   const wire::FindResult& result) {
      const std::size_t i = target_index[t];
      std::optional<StoredValue> value;
      if (result.value) value = self->validated(keys[i], *result.value);
      if (!value) {
        lacked[t].push_back(from);
        return false;
      }
      merge_into(found[i], *value);
      return !latest;
    };
    auto outcome = co_await lookup(targets, std::move(on_result));
    for (std::size_t t = 0; t < targets.size(); ++t) {
      const std::size_t i = target_index[t];
      results[i].hops = outcome.keys[t].hops;
      results[i].requests = outcome.requests;
      if (!found[i]) continue;
      if (options_.cache_locally) {
        const StoredValue& v = *found[i];
        if (!v.is_dictionary)
          cache_.store(targets[t], keys[i], std::nullopt, v.regular.value, v.regular.expiration);
        else
          for (const auto& [subkey, entry] : v.subkeys)
            cache_.store(targets[t], keys[i], subkey, entry.value, entry.expiration);
      }
      if (options_.cache_on_nearest && !lacked[t].empty()) {
        // Push the value to the nearest visited node that did not have it.
        auto nearest =
            std::min_element(lacked[t].begin(), lacked[t].end(), [&](const auto& a, const auto& b) {
              return closer(NodeId::from_peer(a.peer), NodeId::from_peer(b.peer), targets[t]);
            });
        std::vector<wire::StoreItem> items;
        const StoredValue& v = *found[i];
        if (!v.is_dictionary)
          items.push_back({keys[i], std::nullopt, v.regular.value, v.regular.expiration, true});
        else
          for (const auto& [subkey, entry] : v.subkeys)
            items.push_back({keys[i], subkey, entry.value, entry.expiration, true});
        if (items.size() > wire::kMaxItemsPerRequest) items.resize(wire::kMaxItemsPerRequest);
        asio::co_spawn(
            rpc_->get_executor(),
            [self, to = *nearest, request = wire::encode_store_request(items)]() mutable
            -> asio::awaitable<void> { co_await self->call(to, kStore, std::move(request)); },
            asio::detached);
      }
    }
  }
  for (std::size_t i = 0; i < keys.size(); ++i)
    if (found[i]) results[i].value = stripped(std::move(*found[i]));
  co_return results;
}

// ---- stores ---------------------------------------------------------------------

asio::awaitable<StoreResult> DhtNode::store(Bytes key, std::optional<Bytes> subkey, Bytes value,
                                            DhtTime expiration) {
  std::vector<Record> records;
  records.push_back(Record{std::move(key), std::move(subkey), std::move(value), expiration});
  auto results = co_await store_many(std::move(records));
  co_return results.front();
}

asio::awaitable<std::vector<StoreResult>> DhtNode::store_many(std::vector<Record> records) {
  for (auto& record : records) validator_->sign(record);
  auto results = co_await store_signed(records, false);
  const auto now = options_.clock.now();
  for (std::size_t i = 0; i < records.size(); ++i) {
    if (!results[i].ok()) continue;
    const auto key = std::pair{NodeId::of_key(records[i].key), records[i].subkey};
    originated_[key] = Originated{std::move(records[i]), now};
  }
  co_return results;
}

asio::awaitable<std::vector<StoreResult>> DhtNode::store_signed(std::vector<Record> records,
                                                                bool in_cache) {
  std::vector<StoreResult> results(records.size());
  std::vector<NodeId> targets;
  std::vector<std::size_t> target_index;
  for (std::size_t i = 0; i < records.size(); ++i) {
    if (auto refused = refused_locally(records[i], options_.storage, *validator_)) {
      results[i].status = *refused;
    } else {
      targets.push_back(NodeId::of_key(records[i].key));
      target_index.push_back(i);
    }
  }
  if (targets.empty()) co_return results;

  ResultFunction on_result = never_finish;
  const std::size_t store_beam =
      options_.store_beam_size > 0 ? std::max(options_.store_beam_size, options_.num_replicas) : 0;
  auto outcome = co_await lookup(targets, std::move(on_result), store_beam);

  const auto candidates = replica_candidates(outcome, targets, id_, options_.client_mode);

  std::vector<std::size_t> next_candidate(targets.size(), 0);
  std::vector<StoreStatus> first_refusal(targets.size(), StoreStatus::unreachable);
  // Replicas that answered (accepted or refused); only silent ones are replaced.
  std::vector<std::size_t> answered(targets.size(), 0);
  // Round 1 asks the num_replicas nearest; round 2 replaces replicas that failed.
  for (int round = 0; round < 2; ++round) {
    std::map<PeerId, std::pair<PeerAddress, std::vector<std::size_t>>> batches;
    for (std::size_t t = 0; t < targets.size(); ++t) {
      StoreResult& result = results[target_index[t]];
      const std::size_t wanted =
          options_.num_replicas - std::min(options_.num_replicas, answered[t]);
      for (std::size_t n = 0; n < wanted && next_candidate[t] < candidates[t].size(); ++n) {
        const auto& candidate = candidates[t][next_candidate[t]++];
        if (!candidate) {
          const StoreStatus status =
              store_locally(records[target_index[t]], in_cache, StoreSource{});
          ++answered[t];
          if (status == StoreStatus::stored)
            ++result.replicas;
          else if (first_refusal[t] == StoreStatus::unreachable)
            first_refusal[t] = status;
          continue;
        }
        auto& batch = batches[candidate->peer];
        batch.first = *candidate;
        batch.second.push_back(t);
      }
    }
    if (batches.empty()) break;
    std::vector<async::Task> tasks;
    for (auto& [peer, batch] : batches) {
      tasks.push_back([this, &batch, &records, &target_index, &results, &first_refusal, &answered,
                       in_cache]() -> asio::awaitable<void> {
        for (std::size_t start = 0; start < batch.second.size();
             start += wire::kMaxItemsPerRequest) {
          const std::size_t end = std::min(batch.second.size(), start + wire::kMaxItemsPerRequest);
          std::vector<wire::StoreItem> items;
          for (std::size_t j = start; j < end; ++j) {
            const Record& r = records[target_index[batch.second[j]]];
            items.push_back({r.key, r.subkey, r.value, r.expiration, in_cache});
          }
          Bytes request = wire::encode_store_request(items);
          auto response = co_await call(batch.first, kStore, std::move(request));
          if (!response) co_return;
          std::vector<StoreStatus> statuses;
          try {
            statuses = wire::decode_store_response(*response, items.size());
          } catch (const Error&) {
            on_peer_failed(batch.first);
            co_return;
          }
          for (std::size_t j = start; j < end; ++j) {
            const std::size_t t = batch.second[j];
            const StoreStatus status = statuses[j - start];
            ++answered[t];
            if (status == StoreStatus::stored)
              ++results[target_index[t]].replicas;
            else if (first_refusal[t] == StoreStatus::unreachable)
              first_refusal[t] = status;
          }
        }
      });
    }
    co_await async::run_concurrently(std::move(tasks));
  }
  for (std::size_t t = 0; t < targets.size(); ++t) {
    StoreResult& result = results[target_index[t]];
    result.status = result.replicas > 0 ? StoreStatus::stored : first_refusal[t];
  }
  co_return results;
}

// ---- bootstrap and maintenance ----------------------------------------------------

asio::awaitable<void> DhtNode::bootstrap(std::vector<PeerAddress> peers) {
  std::erase_if(peers, [&](const PeerAddress& p) { return NodeId::from_peer(p.peer) == id_; });
  if (peers.empty()) co_return;
  bool any = false;
  auto backoff = options_.bootstrap_backoff;
  for (int attempt = 0; attempt < std::max(1, options_.bootstrap_attempts) && !any; ++attempt) {
    if (attempt > 0) {
      co_await async::sleep_for(backoff);
      backoff *= 2;
    }
    std::vector<async::Task> tasks;
    for (const auto& peer : peers)
      tasks.push_back([this, peer, &any]() -> asio::awaitable<void> {
        if (co_await ping(peer)) any = true;
      });
    co_await async::run_concurrently(std::move(tasks));
  }
  if (!any) {
    std::ostringstream names;
    for (std::size_t i = 0; i < peers.size(); ++i) names << (i ? ", " : "") << peers[i].to_string();
    throw Error(Errc::unavailable, "DHT bootstrap failed: none of the " +
                                       std::to_string(peers.size()) +
                                       " initial peers answered a ping after " +
                                       std::to_string(std::max(1, options_.bootstrap_attempts)) +
                                       " attempts (" + names.str() + ")");
  }
  co_await find_nearest_nodes(id_, options_.routing.bucket_size);
}

asio::awaitable<void> DhtNode::maintenance_step() {
  storage_.purge_expired();
  cache_.purge_expired();

  // Refresh buckets nobody touched for a while by looking up a random id in their range.
  const auto now = options_.clock.now();
  std::vector<NodeId> refresh_targets;
  if (table_.size() > 0) {
    for (const KBucket* bucket : table_.stale_buckets(now - options_.bucket_refresh_interval))
      refresh_targets.push_back(random_id_with_prefix(bucket->prefix, bucket->depth));
    for (const auto& target : refresh_targets) table_.touch_bucket(target, now);
  }
  if (!refresh_targets.empty()) {
    ResultFunction on_result = never_finish;
    co_await lookup(refresh_targets, std::move(on_result));
  }

  // Republish own records before they expire (the nearest nodes may have changed).
  const DhtTime dht_now = options_.clock.wall_now();
  std::erase_if(originated_,
                [&](const auto& item) { return item.second.record.expiration <= dht_now; });
  std::vector<Record> due;
  for (auto& [key, entry] : originated_) {
    if (now - entry.last_published < options_.republish_interval) continue;
    entry.last_published = now;
    due.push_back(entry.record);
  }
  if (!due.empty()) co_await store_signed(std::move(due), false);
}

}  // namespace apiary::dht
