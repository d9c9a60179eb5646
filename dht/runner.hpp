#pragma once
// DhtRunner: a DHT node with its own network thread, for code that is not a
// coroutine (training loops, CLIs). Methods may be called from any thread;
// they hand the work to the node's thread and return std::futures.
//
//   dht::DhtRunner dht(dht::DhtRunner::tcp(identity, {"0.0.0.0", 31337}), peers);
//   dht.store(key, std::nullopt, value, dht::system_dht_time() + 60).get();
//   std::optional<dht::StoredValue> v = dht.get(key).get();
//
// Errors: the constructor throws apiary::Error when bootstrap fails (the thread
// is stopped first); futures rethrow what the coroutine threw.
#include "core/identity.hpp"
#include "net/tcp_transport.hpp"
#include "dht/node.hpp"

#include <asio/co_spawn.hpp>
#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <asio/use_future.hpp>

#include <functional>
#include <future>
#include <memory>
#include <thread>
#include <vector>

namespace apiary::dht {

class DhtRunner {
 public:
  using TransportFactory = std::function<TransportPtr(asio::any_io_executor)>;
  // TCP transport listening on `endpoint` (client_mode: listens nowhere).
  static TransportFactory tcp(const Identity& identity, TcpEndpoint endpoint,
                              bool client_mode = false);

  // Starts the thread, the RPC endpoint and the node, then bootstraps from
  // `peers` (blocking). options.validator defaults to validation only; pass an
  // OwnerSignatureValidator(identity) to sign owned records.
  DhtRunner(TransportFactory make_transport, std::vector<PeerAddress> peers,
            DhtOptions options = {});
  ~DhtRunner();
  DhtRunner(const DhtRunner&) = delete;
  DhtRunner& operator=(const DhtRunner&) = delete;

  PeerAddress address() const { return address_; }

  std::future<StoreResult> store(Bytes key, std::optional<Bytes> subkey, Bytes value,
                                 DhtTime expiration);
  std::future<std::optional<StoredValue>> get(Bytes key, bool latest = false);
  std::future<DhtStats> stats();

  // Runs `make_coroutine(node)` on the node's thread, e.g.
  //   runner.run([&](DhtNode& n) { return n.get_many(keys); }).get();
  template <class MakeCoroutine>
  auto run(MakeCoroutine make_coroutine) {
    return asio::co_spawn(
        io_,
        [node = node_, make_coroutine = std::move(make_coroutine)]() mutable {
          return make_coroutine(*node);
        },
        asio::use_future);
  }

  // Stops the node and joins the thread (also done by the destructor).
  void shutdown();

 private:
  asio::io_context io_;
  asio::executor_work_guard<asio::io_context::executor_type> work_;
  std::shared_ptr<rpc::RpcNode> rpc_;
  std::shared_ptr<DhtNode> node_;
  PeerAddress address_;
  std::thread thread_;
};

}  // namespace apiary::dht
