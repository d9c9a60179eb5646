// In-process transport: connections are pairs of message queues on one
// executor. Per connection end: a deque, an Event and a few flags, so 1,000+
// peers with tens of connections each fit easily in one process.
#include "net/inproc_transport.hpp"

#include "core/async.hpp"

#include <asio/post.hpp>
#include <asio/use_awaitable.hpp>

#include <deque>
#include <string>
#include <unordered_map>
#include <vector>

namespace apiary {

namespace {

constexpr std::string_view inproc_host = "inproc";

class InprocConnection final : public Connection {
 public:
  InprocConnection(const asio::any_io_executor& executor, PeerId remote_peer, PublicKey remote_key,
                   std::optional<PeerAddress> remote_listen, std::size_t max_message_size,
                   Bytes remote_token)
      : remote_peer_(remote_peer),
        remote_key_(remote_key),
        remote_listen_(std::move(remote_listen)),
        remote_token_(std::move(remote_token)),
        max_message_size_(max_message_size),
        readable_(executor) {}

  static void pair(const std::shared_ptr<InprocConnection>& a,
                   const std::shared_ptr<InprocConnection>& b) {
    a->peer_ = b;
    b->peer_ = a;
  }

  const PeerId& remote_peer() const noexcept override { return remote_peer_; }
  const PublicKey& remote_key() const noexcept override { return remote_key_; }
  std::optional<PeerAddress> remote_listen_address() const override { return remote_listen_; }
  std::string remote_network() const override { return std::string(inproc_host); }
  ByteSpan remote_token() const noexcept override { return remote_token_; }

  asio::awaitable<void> send(Bytes message) override {
    if (!open_) throw Error(Errc::connection_closed, "inproc connection closed");
    if (message.size() > max_message_size_) {
      throw Error(Errc::resource_exhausted, "message of " + std::to_string(message.size()) +
                                                " bytes exceeds the limit of " +
                                                std::to_string(max_message_size_));
    }
    auto peer = peer_.lock();
    if (!peer || !peer->open_) {
      close();
      throw Error(Errc::connection_closed, "inproc connection closed by peer");
    }
    peer->deliver(std::move(message));
    co_return;
  }

  asio::awaitable<Bytes> receive() override {
    for (;;) {
      if (!open_) throw Error(Errc::connection_closed, "inproc connection closed");
      if (!inbox_.empty()) {
        Bytes message = std::move(inbox_.front());
        inbox_.pop_front();
        co_return message;
      }
      if (peer_closed_) {
        close();
        throw Error(Errc::connection_closed, "inproc connection closed by peer");
      }
      co_await readable_.wait();
    }
  }

  void close() noexcept override {
    if (!open_) return;
    open_ = false;
    inbox_.clear();
    readable_.notify();
    if (auto peer = peer_.lock()) peer->on_peer_closed();
  }

  bool is_open() const noexcept override { return open_; }

 private:
  void deliver(Bytes message) {
    // The receiver's own frame limit applies too, as on TCP.
    if (message.size() > max_message_size_) {
      close();
      return;
    }
    inbox_.push_back(std::move(message));
    readable_.notify();
  }

  void on_peer_closed() noexcept {
    peer_closed_ = true;
    readable_.notify();
  }

  PeerId remote_peer_;
  PublicKey remote_key_;
  std::optional<PeerAddress> remote_listen_;
  Bytes remote_token_;
  std::size_t max_message_size_;
  std::weak_ptr<InprocConnection> peer_;
  std::deque<Bytes> inbox_;
  async::Event readable_;
  bool open_ = true;
  bool peer_closed_ = false;
};

}  // namespace

class InprocTransport;

struct InprocNetwork::State {
  asio::any_io_executor executor;
  std::vector<std::weak_ptr<InprocTransport>> by_port;  // port n at index n - 1
  std::unordered_map<PeerId, std::weak_ptr<InprocTransport>> by_peer;
};

class InprocTransport final : public Transport,
                              public std::enable_shared_from_this<InprocTransport> {
 public:
  InprocTransport(std::shared_ptr<InprocNetwork::State> network, const Identity& identity,
                  TransportOptions options, std::uint16_t port)
      : network_(std::move(network)),
        key_(identity.public_key()),
        peer_(identity.peer_id()),
        options_(std::move(options)),
        port_(port) {}

  ~InprocTransport() override { close(); }

  asio::any_io_executor get_executor() override { return network_->executor; }

  asio::awaitable<ConnectionPtr> connect(const PeerAddress& address) override {
    // Connecting takes a turn of the executor, as a real dial would.
    co_await asio::post(network_->executor, asio::use_awaitable);
    if (closed_) throw Error(Errc::unavailable, "inproc transport closed");
    if (address.host != inproc_host || address.port == 0 ||
        address.port > network_->by_port.size()) {
      throw Error(Errc::unavailable, "no inproc peer at " + address.to_string());
    }
    auto target = network_->by_port[address.port - 1].lock();
    if (!target || target->closed_ || !target->on_accept_ || target->options_.client_mode) {
      throw Error(Errc::unavailable, "inproc peer at " + address.to_string() + " is not listening");
    }
    if (target->peer_ != address.peer) {
      throw Error(Errc::permission_denied,
                  "peer at " + address.host + ":" + std::to_string(address.port) + " has id " +
                      target->peer_.to_string() + ", expected " + address.peer.to_string());
    }
    if (target->options_.admit && !target->options_.admit(key_, options_.own_token)) {
      throw Error(Errc::permission_denied,
                  "peer " + address.peer.to_string() + " refused our token");
    }
    if (options_.admit && !options_.admit(target->key_, target->options_.own_token)) {
      throw Error(Errc::permission_denied,
                  "peer " + address.peer.to_string() + " presented no valid token");
    }
    std::optional<PeerAddress> our_listen;
    if (!options_.client_mode) our_listen = local_address();
    auto ours = std::make_shared<InprocConnection>(
        network_->executor, target->peer_, target->key_, target->local_address(),
        options_.max_message_size, target->options_.own_token);
    auto theirs =
        std::make_shared<InprocConnection>(network_->executor, peer_, key_, our_listen,
                                           target->options_.max_message_size, options_.own_token);
    InprocConnection::pair(ours, theirs);
    track(ours);
    target->track(theirs);
    // The acceptor learns of the connection asynchronously, as with TCP.
    asio::post(network_->executor, [target, theirs] {
      if (target->closed_ || !target->on_accept_) {
        theirs->close();
        return;
      }
      target->on_accept_(theirs);
    });
    co_return ours;
  }

  void listen(std::function<void(ConnectionPtr)> on_accept) override {
    if (options_.client_mode || closed_) return;
    on_accept_ = std::move(on_accept);
  }

  PeerAddress local_address() const override {
    return PeerAddress{peer_, std::string(inproc_host),
                       options_.client_mode ? std::uint16_t{0} : port_};
  }

  void close() noexcept override {
    if (closed_) return;
    closed_ = true;
    on_accept_ = nullptr;
    auto connections = std::move(connections_);
    for (auto& weak : connections) {
      if (auto connection = weak.lock()) connection->close();
    }
  }

  std::size_t close_if(const std::function<bool(const Connection&)>& condition) override {
    std::size_t closed_now = 0;
    for (const auto& weak : std::vector(connections_)) {
      auto connection = weak.lock();
      if (!connection || !connection->is_open() || !condition(*connection)) continue;
      connection->close();
      ++closed_now;
    }
    return closed_now;
  }

 private:
  void track(const std::shared_ptr<InprocConnection>& connection) {
    // Prune dead entries now and then so long-running tests do not grow the list.
    if (connections_.size() >= 2 * live_hint_ + 16) {
      std::erase_if(connections_, [](const auto& weak) {
        auto c = weak.lock();
        return !c || !c->is_open();
      });
      live_hint_ = connections_.size();
    }
    connections_.push_back(connection);
  }

  std::shared_ptr<InprocNetwork::State> network_;
  PublicKey key_;
  PeerId peer_;
  TransportOptions options_;
  std::uint16_t port_;
  std::function<void(ConnectionPtr)> on_accept_;
  std::vector<std::weak_ptr<InprocConnection>> connections_;
  std::size_t live_hint_ = 0;
  bool closed_ = false;
};

std::shared_ptr<InprocNetwork> InprocNetwork::create(asio::any_io_executor executor) {
  auto network = std::shared_ptr<InprocNetwork>(new InprocNetwork());
  network->state_ = std::make_shared<State>();
  network->state_->executor = std::move(executor);
  return network;
}

TransportPtr InprocNetwork::create_transport(const Identity& identity, TransportOptions options) {
  if (state_->by_port.size() >= 65535) {
    throw Error(Errc::resource_exhausted, "inproc network is full (65535 peers)");
  }
  const auto port = static_cast<std::uint16_t>(state_->by_port.size() + 1);
  auto transport = std::make_shared<InprocTransport>(state_, identity, std::move(options), port);
  state_->by_port.push_back(transport);
  state_->by_peer[identity.peer_id()] = transport;
  return transport;
}

void InprocNetwork::kill(const PeerId& peer) {
  auto it = state_->by_peer.find(peer);
  if (it == state_->by_peer.end()) return;
  if (auto transport = it->second.lock()) transport->close();
  state_->by_peer.erase(it);
}

}  // namespace apiary
