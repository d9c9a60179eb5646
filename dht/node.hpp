#pragma once
// DhtNode: one Kademlia peer — the public API of the DHT.
//
//   auto node = dht::DhtNode::create(rpc, options);   // registers dht.* RPC methods
//   rpc->start();
//   co_await node->bootstrap(initial_peers);
//   co_await node->store(key, std::nullopt, value, dht::system_dht_time() + 60);
//   auto found = co_await node->get(key);             // std::optional<StoredValue>
//
// Records are (key, subkey, value, expiration); the newest expiration wins and
// a key may hold a dictionary of subkeys (see dht/record.hpp). store() sends a
// record to the `num_replicas` nodes nearest to the key (this node included
// when it is one of them); get() looks the key up with an iterative,
// batched lookup (dht/traversal.hpp), stopping at the first value found, or
// with latest=true crawling the whole beam and merging what it finds. A found
// value is cached on the nearest visited node that lacked it. The node
// republishes the records it originated before they expire, refreshes stale
// buckets and purges expired records (maintenance loop).
//
// Client mode (DhtOptions::client_mode, with a client-mode transport): the
// node gets and stores but serves no RPCs, so nobody puts it in a routing table.
//
// Threading: every method runs on the RpcNode's executor (one network thread);
// for code outside coroutines see dht/runner.hpp (blocking wrappers).
// Errors: store/get report per-record outcomes (StoreResult, nullopt for
// "not found"); bootstrap() throws apiary::Error{Errc::unavailable} when no
// initial peer answers; invalid arguments throw apiary::Error{invalid_argument}.
#include "dht/blacklist.hpp"
#include "dht/record.hpp"
#include "dht/routing_table.hpp"
#include "dht/storage.hpp"
#include "dht/traversal.hpp"
#include "dht/validator.hpp"
#include "net/rpc.hpp"

#include <asio/awaitable.hpp>
#include <asio/steady_timer.hpp>

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_set>
#include <vector>

namespace apiary::dht {

struct DhtOptions {
  RoutingOptions routing;      // k = 20, depth_modulo = 5
  TraversalOptions traversal;  // alpha, beam (= k), batching
  // Beam of the lookup before a store: the replicas are the num_replicas nearest, so a
  // beam of 2 × num_replicas converges in fewer rounds than k (0: traversal.beam_size).
  std::size_t store_beam_size = 10;
  std::size_t num_replicas = 5;  // nodes a record is stored on
  std::chrono::milliseconds rpc_timeout{3000};
  std::chrono::milliseconds blacklist_time{5000};  // first ban; ×backoff_rate per further failure
  double blacklist_backoff_rate = 2.0;
  StorageLimits storage;
  StorageLimits cache = [] {
    StorageLimits limits;
    limits.max_total_bytes = 64u << 20;
    return limits;
  }();
  bool client_mode = false;
  bool cache_locally = true;     // keep found values in the local cache
  bool cache_on_nearest = true;  // push a found value to the nearest node that lacked it
  std::chrono::milliseconds maintenance_interval{5000};
  std::chrono::seconds bucket_refresh_interval{600};
  std::chrono::seconds republish_interval{60};
  int bootstrap_attempts = 4;  // rounds of pings, with exponential backoff
  std::chrono::milliseconds bootstrap_backoff{500};
  apiary::Clock clock;  // wall: record times; steady: routing table, blacklist
  // Applied to stored and found records; nullptr = OwnerSignatureValidator (validate only).
  std::shared_ptr<const RecordValidator> validator;
};

struct StoreResult {
  StoreStatus status = StoreStatus::unreachable;  // stored when at least one replica accepted
  std::size_t replicas = 0;                       // nodes that accepted it
  bool ok() const noexcept { return status == StoreStatus::stored; }
  std::string reason() const { return std::string(to_string(status)); }
};

struct GetResult {
  std::optional<StoredValue> value;  // signatures stripped
  int hops = 0;                      // 0: answered locally
  std::size_t requests = 0;          // find requests of the traversal (shared by its keys)
};

struct DhtStats {
  std::size_t routing_table_size = 0;
  std::size_t records = 0;
  std::size_t cached_records = 0;
  std::size_t storage_bytes = 0;
  std::uint64_t requests_served = 0;
  std::size_t blacklisted = 0;
};

class DhtNode : public std::enable_shared_from_this<DhtNode> {
 public:
  // Registers the dht.ping/store/find methods on `rpc` (not in client mode) and
  // starts the maintenance loop. The caller starts and stops `rpc`.
  static std::shared_ptr<DhtNode> create(std::shared_ptr<rpc::RpcNode> rpc,
                                         DhtOptions options = {});
  ~DhtNode();
  DhtNode(const DhtNode&) = delete;
  DhtNode& operator=(const DhtNode&) = delete;

  // Pings `peers` (with retries and backoff) and looks up the own id to fill the
  // routing table. No peers: this is the first node. Throws Error{unavailable}
  // naming the peers when none answers.
  asio::awaitable<void> bootstrap(std::vector<PeerAddress> peers);

  asio::awaitable<StoreResult> store(Bytes key, std::optional<Bytes> subkey, Bytes value,
                                     DhtTime expiration);
  // One traversal for all records; results in the same order.
  asio::awaitable<std::vector<StoreResult>> store_many(std::vector<Record> records);

  asio::awaitable<std::optional<StoredValue>> get(Bytes key, bool latest = false);
  asio::awaitable<std::vector<GetResult>> get_many(std::vector<Bytes> keys, bool latest = false);

  // The `count` nodes nearest to `target` that answered (iterative lookup).
  asio::awaitable<std::vector<PeerAddress>> find_nearest_nodes(NodeId target, std::size_t count);
  // True when `peer` answered a ping (the peer is then in the routing table).
  asio::awaitable<bool> ping(PeerAddress peer);

  // Stops the maintenance loop; pending lookups finish on their own deadlines.
  void stop();

  DhtStats stats() const;
  const NodeId& id() const noexcept { return id_; }
  PeerAddress address() const { return rpc_->local_address(); }
  bool client_mode() const noexcept { return options_.client_mode; }
  const RoutingTable& routing_table() const noexcept { return table_; }
  const DhtOptions& options() const noexcept { return options_; }
  // The key this node signs owner records with (its validator's signer): the
  // "[owner:<key>]" subkeys it can write. nullopt: it can write none.
  std::optional<PublicKey> signing_key() const { return validator_->signer_key(); }
  rpc::RpcNode& rpc() noexcept { return *rpc_; }

 private:
  DhtNode(std::shared_ptr<rpc::RpcNode> rpc, DhtOptions options);
  void register_methods();
  void start_maintenance();

  // Handlers.
  asio::awaitable<Bytes> handle_ping(const rpc::RequestContext& ctx, Bytes request);
  asio::awaitable<Bytes> handle_store(const rpc::RequestContext& ctx, Bytes request);
  asio::awaitable<Bytes> handle_find(const rpc::RequestContext& ctx, Bytes request);
  void learn_caller(const rpc::RequestContext& ctx);

  // Outgoing calls: nullopt on failure (the peer is then blacklisted and dropped).
  asio::awaitable<std::optional<Bytes>> call(const PeerAddress& to, std::string_view method,
                                             Bytes request);
  asio::awaitable<std::optional<std::vector<wire::FindResult>>> call_find(
      const PeerAddress& to, std::vector<NodeId> key_ids);
  void on_peer_answered(const PeerAddress& peer);
  void on_peer_failed(const PeerAddress& peer);
  void on_peer_seen(const PeerAddress& peer);

  // beam_size 0: options_.traversal.beam_size.
  asio::awaitable<TraversalResult> lookup(std::vector<NodeId> targets, ResultFunction on_result,
                                          std::size_t beam_size = 0);
  asio::awaitable<std::vector<StoreResult>> store_signed(std::vector<Record> records,
                                                         bool in_cache);
  // `source`: who asked (StoreSource{} for this node itself), for the quotas.
  StoreStatus store_locally(const Record& record, bool in_cache, const StoreSource& source);
  std::optional<StoredValue> local_value(const NodeId& key_id);
  std::optional<StoredValue> validated(const Bytes& key, const StoredValue& value) const;
  StoredValue stripped(StoredValue value) const;
  asio::awaitable<void> maintenance_step();

  std::shared_ptr<rpc::RpcNode> rpc_;
  DhtOptions options_;
  NodeId id_;
  std::shared_ptr<const RecordValidator> validator_;
  RoutingTable table_;
  Storage storage_;
  Storage cache_;
  Blacklist blacklist_;
  std::unordered_set<NodeId> pinging_;  // eviction pings in flight
  std::uint64_t requests_served_ = 0;
  bool stopped_ = false;
  std::shared_ptr<asio::steady_timer> maintenance_timer_;

  struct Originated {
    Record record;  // as signed and sent
    std::chrono::steady_clock::time_point last_published;
  };
  std::map<std::pair<NodeId, std::optional<Bytes>>, Originated> originated_;
};

}  // namespace apiary::dht
