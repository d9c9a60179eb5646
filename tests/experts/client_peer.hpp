#pragma once
// A DHT peer and RPC endpoint in a test process, on its own network thread,
// over the encrypted TCP transport (with `options`, e.g. a membership token).
#include "core/identity.hpp"
#include "dht/node.hpp"
#include "net/rpc.hpp"
#include "net/tcp_transport.hpp"

#include <asio/co_spawn.hpp>
#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <asio/use_future.hpp>

#include <future>
#include <memory>
#include <thread>

namespace apiary::experts::testing {

class ClientPeer {
 public:
  explicit ClientPeer(TransportOptions options = {}, Identity identity = Identity::generate()) {
    rpc_ = std::make_shared<rpc::RpcNode>(
        make_tcp_transport(ctx_.get_executor(), identity, {"127.0.0.1", 0}, options));
    dht_ = dht::DhtNode::create(rpc_);
    rpc_->start();
    thread_ = std::thread([this] { ctx_.run(); });
  }
  explicit ClientPeer(const PeerAddress& peer) : ClientPeer() { bootstrap(peer); }
  ClientPeer(const ClientPeer&) = delete;
  ClientPeer& operator=(const ClientPeer&) = delete;
  ~ClientPeer() {
    std::promise<void> done;
    asio::post(ctx_, [&] {
      dht_->stop();
      rpc_->stop();
      done.set_value();
    });
    done.get_future().wait();
    guard_.reset();
    ctx_.stop();
    thread_.join();
  }
  // Joins the DHT through `peer`; throws what the bootstrap threw.
  void bootstrap(const PeerAddress& peer) {
    asio::co_spawn(ctx_, dht_->bootstrap({peer}), asio::use_future).get();
  }
  // Runs `task` on the peer's network thread and waits for it (rethrows).
  template <typename T>
  T run(asio::awaitable<T> task) {
    return asio::co_spawn(ctx_, std::move(task), asio::use_future).get();
  }
  // Open connections, counted on the network thread.
  std::size_t connection_count() {
    std::promise<std::size_t> count;
    asio::post(ctx_, [&] { count.set_value(rpc_->connection_count()); });
    return count.get_future().get();
  }
  std::shared_ptr<dht::DhtNode> dht() { return dht_; }
  rpc::RpcNode& rpc() { return *rpc_; }

 private:
  asio::io_context ctx_;
  asio::executor_work_guard<asio::io_context::executor_type> guard_{ctx_.get_executor()};
  std::shared_ptr<rpc::RpcNode> rpc_;
  std::shared_ptr<dht::DhtNode> dht_;
  std::thread thread_;
};

}  // namespace apiary::experts::testing
