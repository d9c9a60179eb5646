#pragma once
// LocalSwarm: many DHT nodes in one process on one executor — for tests,
// benchmarks and demos (e.g. 1,000 nodes over an InprocNetwork, or 128 nodes
// over TCP loopback). Every node gets a fresh identity, its own RpcNode and
// an OwnerSignatureValidator signing for that identity.
// Threading: call everything on the swarm's executor (from coroutines), except
// the constructor. Errors: throws apiary::Error (bootstrap failures).
#include "core/identity.hpp"
#include "net/rpc.hpp"
#include "net/transport.hpp"
#include "dht/node.hpp"

#include <asio/awaitable.hpp>

#include <functional>
#include <memory>
#include <random>
#include <vector>

namespace apiary {
class InprocNetwork;
}

namespace apiary::dht {

class LocalSwarm {
 public:
  // Makes the transport of a new node (client_mode: a transport that never accepts).
  using TransportFactory = std::function<TransportPtr(const Identity& identity, bool client_mode)>;

  static TransportFactory inproc(std::shared_ptr<InprocNetwork> network);
  static TransportFactory tcp_loopback(asio::any_io_executor executor);

  LocalSwarm(asio::any_io_executor executor, TransportFactory factory, DhtOptions options = {},
             std::uint64_t seed = 1);
  ~LocalSwarm();

  // Adds `count` server nodes: the first bootstraps alone, later ones from up to
  // 3 random earlier nodes; up to `parallel` bootstraps run at once.
  asio::awaitable<void> grow(std::size_t count, std::size_t parallel = 16);
  // Adds one node bootstrapped from up to 3 random existing nodes.
  asio::awaitable<std::shared_ptr<DhtNode>> add_node(bool client_mode = false);
  asio::awaitable<std::shared_ptr<DhtNode>> add_node(bool client_mode, DhtOptions options);

  // Simulates a crash of node `index` (stops it and closes its transport).
  void kill(std::size_t index);
  bool alive(std::size_t index) const { return alive_.at(index); }
  std::size_t size() const noexcept { return nodes_.size(); }
  std::shared_ptr<DhtNode> node(std::size_t index) const { return nodes_.at(index); }
  const Identity& identity(std::size_t index) const { return identities_.at(index); }
  std::vector<std::size_t> alive_indices() const;
  // Stops every node and RPC endpoint (call before destroying the executor's context).
  void stop();
  std::mt19937_64& rng() noexcept { return rng_; }

 private:
  asio::any_io_executor executor_;
  TransportFactory factory_;
  DhtOptions options_;
  std::mt19937_64 rng_;
  std::vector<Identity> identities_;
  std::vector<std::shared_ptr<rpc::RpcNode>> rpcs_;
  std::vector<std::shared_ptr<DhtNode>> nodes_;
  std::vector<bool> alive_;
  std::vector<std::size_t> servers_;  // indices of non-client nodes
};

}  // namespace apiary::dht
