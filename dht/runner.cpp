#include "dht/runner.hpp"

#include <asio/post.hpp>

namespace apiary::dht {

DhtRunner::TransportFactory DhtRunner::tcp(const Identity& identity, TcpEndpoint endpoint,
                                           bool client_mode) {
  return [identity, endpoint = std::move(endpoint), client_mode](asio::any_io_executor executor) {
    TransportOptions options;
    options.client_mode = client_mode;
    return make_tcp_transport(std::move(executor), identity, endpoint, options);
  };
}

DhtRunner::DhtRunner(TransportFactory make_transport, std::vector<PeerAddress> peers,
                     DhtOptions options)
    : work_(io_.get_executor()) {
  thread_ = std::thread([this] { io_.run(); });
  try {
    // Everything touching the node happens on its thread.
    auto started = asio::co_spawn(
        io_,
        [this, &make_transport, &options,
         peers = std::move(peers)]() mutable -> asio::awaitable<PeerAddress> {
          rpc_ = std::make_shared<rpc::RpcNode>(make_transport(io_.get_executor()));
          node_ = DhtNode::create(rpc_, std::move(options));
          rpc_->start();
          co_await node_->bootstrap(std::move(peers));
          co_return rpc_->local_address();
        },
        asio::use_future);
    address_ = started.get();
  } catch (...) {
    shutdown();
    throw;
  }
}

DhtRunner::~DhtRunner() {
  shutdown();
}

void DhtRunner::shutdown() {
  if (!thread_.joinable()) return;
  std::promise<void> stopped;
  asio::post(io_, [this, &stopped] {
    if (node_) node_->stop();
    if (rpc_) rpc_->stop();
    stopped.set_value();
  });
  stopped.get_future().wait();
  work_.reset();
  io_.stop();
  thread_.join();
}

std::future<StoreResult> DhtRunner::store(Bytes key, std::optional<Bytes> subkey, Bytes value,
                                          DhtTime expiration) {
  return asio::co_spawn(
      io_, node_->store(std::move(key), std::move(subkey), std::move(value), expiration),
      asio::use_future);
}

std::future<std::optional<StoredValue>> DhtRunner::get(Bytes key, bool latest) {
  return asio::co_spawn(io_, node_->get(std::move(key), latest), asio::use_future);
}

std::future<DhtStats> DhtRunner::stats() {
  return asio::co_spawn(
      io_, [node = node_]() -> asio::awaitable<DhtStats> { co_return node->stats(); },
      asio::use_future);
}

}  // namespace apiary::dht
