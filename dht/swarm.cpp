#include "dht/swarm.hpp"

#include "core/async.hpp"
#include "net/inproc_transport.hpp"
#include "net/tcp_transport.hpp"

#include <algorithm>

namespace apiary::dht {

LocalSwarm::TransportFactory LocalSwarm::inproc(std::shared_ptr<InprocNetwork> network) {
  return [network](const Identity& identity, bool client_mode) {
    TransportOptions options;
    options.client_mode = client_mode;
    return network->create_transport(identity, options);
  };
}

LocalSwarm::TransportFactory LocalSwarm::tcp_loopback(asio::any_io_executor executor) {
  return [executor](const Identity& identity, bool client_mode) {
    TransportOptions options;
    options.client_mode = client_mode;
    return make_tcp_transport(executor, identity, TcpEndpoint{"127.0.0.1", 0}, options);
  };
}

LocalSwarm::LocalSwarm(asio::any_io_executor executor, TransportFactory factory, DhtOptions options,
                       std::uint64_t seed)
    : executor_(std::move(executor)),
      factory_(std::move(factory)),
      options_(std::move(options)),
      rng_(seed) {}

LocalSwarm::~LocalSwarm() {
  stop();
}

asio::awaitable<std::shared_ptr<DhtNode>> LocalSwarm::add_node(bool client_mode) {
  DhtOptions options = options_;
  co_return co_await add_node(client_mode, std::move(options));
}

asio::awaitable<std::shared_ptr<DhtNode>> LocalSwarm::add_node(bool client_mode,
                                                               DhtOptions options) {
  identities_.push_back(Identity::generate());
  const Identity& identity = identities_.back();
  auto rpc = std::make_shared<rpc::RpcNode>(factory_(identity, client_mode));
  options.client_mode = client_mode;
  if (!options.validator) options.validator = std::make_shared<OwnerSignatureValidator>(identity);
  auto node = DhtNode::create(rpc, std::move(options));
  rpc->start();
  std::vector<PeerAddress> peers;
  std::vector<std::size_t> candidates;
  for (std::size_t i : servers_)
    if (alive_[i]) candidates.push_back(i);
  std::shuffle(candidates.begin(), candidates.end(), rng_);
  for (std::size_t i = 0; i < std::min<std::size_t>(3, candidates.size()); ++i)
    peers.push_back(nodes_[candidates[i]]->address());
  const std::size_t index = nodes_.size();
  rpcs_.push_back(rpc);
  nodes_.push_back(node);
  alive_.push_back(true);
  if (!client_mode) servers_.push_back(index);
  co_await node->bootstrap(std::move(peers));
  co_return node;
}

asio::awaitable<void> LocalSwarm::grow(std::size_t count, std::size_t parallel) {
  std::size_t added = 0;
  // A few nodes one by one so the first ones know each other, then in waves.
  while (added < count && nodes_.size() < 4) {
    co_await add_node(false);
    ++added;
  }
  while (added < count) {
    const std::size_t wave = std::min(parallel, count - added);
    std::vector<async::Task> tasks;
    for (std::size_t i = 0; i < wave; ++i)
      tasks.push_back([this]() -> asio::awaitable<void> { co_await add_node(false); });
    co_await async::run_concurrently(std::move(tasks));
    added += wave;
  }
}

void LocalSwarm::kill(std::size_t index) {
  if (!alive_.at(index)) return;
  alive_[index] = false;
  nodes_[index]->stop();
  rpcs_[index]->stop();
  rpcs_[index]->transport().close();  // refuse new connections, like a crashed process
}

std::vector<std::size_t> LocalSwarm::alive_indices() const {
  std::vector<std::size_t> out;
  for (std::size_t i = 0; i < nodes_.size(); ++i)
    if (alive_[i]) out.push_back(i);
  return out;
}

void LocalSwarm::stop() {
  for (std::size_t i = 0; i < nodes_.size(); ++i) {
    nodes_[i]->stop();
    rpcs_[i]->stop();
  }
}

}  // namespace apiary::dht
