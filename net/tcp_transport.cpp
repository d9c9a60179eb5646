// TCP transport: acceptor, dialing, handshake under a deadline, admission
// (net/admission.hpp: connection and per-prefix handshake limits), and the
// bookkeeping that lets close() end every connection.
#include "net/tcp_transport.hpp"

#include "core/async.hpp"
#include "core/error.hpp"
#include "core/log.hpp"
#include "net/tcp_connection.hpp"
#include "net/tcp_metrics.hpp"
#include "net/tcp_wire.hpp"

#include <asio/co_spawn.hpp>
#include <asio/connect.hpp>
#include <asio/detached.hpp>
#include <asio/ip/tcp.hpp>

#include <sys/resource.h>

#include <algorithm>
#include <string>
#include <unordered_map>
#include <vector>

namespace apiary {

namespace {

using asio::experimental::as_tuple;
using asio::ip::tcp;

// File descriptors kept free of connections for the rest of the process
// (files, the listener, outbound dials in progress).
constexpr std::size_t reserved_descriptors = 64;

// Keeps max_connections under the process's file limit, so that a flood of
// connections is refused by the policy rather than by accept() failing.
ConnectionLimits fit_to_file_limit(ConnectionLimits limits) {
  rlimit files{};
  if (getrlimit(RLIMIT_NOFILE, &files) != 0 || files.rlim_cur == RLIM_INFINITY) return limits;
  const auto soft = static_cast<std::size_t>(files.rlim_cur);
  const std::size_t usable =
      soft > 2 * reserved_descriptors ? soft - reserved_descriptors : soft / 2;
  limits.max_connections = std::min(limits.max_connections, usable);
  return limits;
}

std::string ms_text(std::chrono::milliseconds ms) {
  return std::to_string(ms.count()) + " ms";
}

// Observed host of a connected socket, v4-mapped addresses shown as IPv4.
std::string remote_host(const tcp::socket& socket) {
  asio::error_code ec;
  auto endpoint = socket.remote_endpoint(ec);
  if (ec) return {};
  auto address = endpoint.address();
  if (address.is_v6() && address.to_v6().is_v4_mapped())
    address = asio::ip::make_address_v4(asio::ip::v4_mapped, address.to_v6());
  return address.to_string();
}

std::optional<PeerAddress> listen_address_of(const tcp::socket& socket, const HandshakeResult& hs) {
  if (hs.remote_listen_port == 0) return std::nullopt;
  std::string host = remote_host(socket);
  if (host.empty()) return std::nullopt;
  return PeerAddress{hs.remote_peer, std::move(host), hs.remote_listen_port};
}

struct TransportState : std::enable_shared_from_this<TransportState> {
  TransportState(asio::any_io_executor ex, const Identity& id, TcpEndpoint endpoint,
                 TransportOptions opts)
      : executor(std::move(ex)),
        identity(id),
        listen_on(std::move(endpoint)),
        options(std::move(opts)),
        admission(fit_to_file_limit(options.limits)),
        body_budget(std::make_shared<BodyBudget>(options.frame_body_budget)) {}

  asio::any_io_executor executor;
  Identity identity;
  TcpEndpoint listen_on;
  TransportOptions options;
  std::optional<tcp::acceptor> acceptor;
  std::uint16_t bound_port = 0;
  bool closed = false;
  bool listening = false;
  Admission admission;
  std::shared_ptr<BodyBudget> body_budget;  // shared with the connections
  // Sockets of inbound handshakes in progress, so that an evicted one can be aborted.
  std::unordered_map<Admission::Ticket, std::shared_ptr<tcp::socket>> handshake_sockets;
  SteadyClock::time_point last_refusal_warning{};
  std::size_t refusals_unreported = 0;
  std::function<void(ConnectionPtr)> on_accept;
  std::vector<std::weak_ptr<TcpConnection>> connections;

  std::uint16_t announced_port() const { return options.client_mode ? 0 : bound_port; }

  HandshakeConfig handshake_config(std::optional<PeerId> expected) {
    HandshakeConfig config;
    config.listen_port = announced_port();
    config.token = options.own_token;
    config.expected_peer = expected;
    config.admit = options.admit;
    if (!expected) {  // responder: refuse a peer at its limit before the key exchange
      config.admit_identity = [this](const PublicKey& claimed) {
        return admission.peer_has_room(claimed.peer_id());
      };
    }
    return config;
  }

  // Warns about refusals at most every 10 s (a flood must not flood the log too).
  void note_refusal(const std::string& from, const std::string& why) {
    tcp_metrics::counters().refused.inc();
    ++refusals_unreported;
    const auto now = SteadyClock::now();
    if (now - last_refusal_warning < std::chrono::seconds(10)) {
      log::debug("refused inbound connection from {}: {}", from, why);
      return;
    }
    log::warn("refused inbound connection from {}: {} ({} refusals since the last warning)", from,
              why, refusals_unreported);
    last_refusal_warning = now;
    refusals_unreported = 0;
  }

  // The hook that uncounts a counted connection when it closes.
  std::function<void()> uncount_on_close(Admission::Connection counted) {
    std::weak_ptr<TransportState> weak = weak_from_this();
    return [weak, counted = std::move(counted)] {
      if (auto state = weak.lock()) state->admission.remove_connection(counted);
    };
  }

  void track(const std::shared_ptr<TcpConnection>& connection) {
    if (connections.size() >= 64 && connections.size() == connections.capacity()) {
      std::erase_if(connections, [](const auto& weak) { return weak.expired(); });
    }
    connections.push_back(connection);
  }

  void bind() {
    asio::error_code ec;
    auto address = asio::ip::make_address(listen_on.host, ec);
    if (ec)
      throw Error(Errc::invalid_argument, "cannot listen on '" + listen_on.host +
                                              "': not an IP address (" + ec.message() + ")");
    tcp::endpoint endpoint(address, listen_on.port);
    acceptor.emplace(executor);
    acceptor->open(endpoint.protocol(), ec);
    if (!ec) acceptor->set_option(tcp::acceptor::reuse_address(true), ec);
    if (!ec) acceptor->bind(endpoint, ec);
    if (!ec) acceptor->listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
      acceptor.reset();
      throw Error(Errc::io_error,
                  "cannot listen on " + tcp_wire::endpoint_text(endpoint) + ": " + ec.message());
    }
    bound_port = acceptor->local_endpoint().port();
  }

  void close() noexcept {
    if (closed) return;
    closed = true;
    if (acceptor) {
      asio::error_code ec;
      acceptor->close(ec);
    }
    auto to_close = std::move(connections);
    connections.clear();
    for (auto& weak : to_close)
      if (auto connection = weak.lock()) connection->close();
    on_accept = nullptr;
  }

  std::size_t close_if(const std::function<bool(const Connection&)>& condition) {
    std::size_t closed_now = 0;
    std::erase_if(connections, [](const auto& weak) { return weak.expired(); });
    for (const auto& weak : std::vector(connections)) {  // close() may re-enter track()
      auto connection = weak.lock();
      if (!connection || !connection->is_open() || !condition(*connection)) continue;
      connection->close();
      ++closed_now;
    }
    return closed_now;
  }
};

asio::awaitable<void> dial(tcp::socket& socket, const PeerAddress& address, bool& connected) {
  auto executor = co_await asio::this_coro::executor;
  asio::error_code ec;
  auto ip = asio::ip::make_address(address.host, ec);
  if (!ec) {
    std::tie(ec) = co_await socket.async_connect(tcp::endpoint(ip, address.port),
                                                 as_tuple(asio::use_awaitable));
  } else {
    tcp::resolver resolver(executor);
    auto [resolve_ec, results] = co_await resolver.async_resolve(
        address.host, std::to_string(address.port), as_tuple(asio::use_awaitable));
    ec = resolve_ec;
    if (!ec)
      std::tie(ec, std::ignore) =
          co_await asio::async_connect(socket, results, as_tuple(asio::use_awaitable));
  }
  if (ec)
    throw Error(Errc::unavailable,
                "cannot connect to " + address.to_string() + ": " + ec.message());
  connected = true;
  socket.set_option(tcp::no_delay(true), ec);
}

asio::awaitable<HandshakeResult> dial_and_handshake(tcp::socket& socket, const PeerAddress& address,
                                                    Handshake& handshake, bool& connected) {
  co_await dial(socket, address, connected);
  co_await tcp_wire::run_handshake(socket, handshake, address.to_string());
  co_return handshake.result();
}

asio::awaitable<HandshakeResult> answer_handshake(tcp::socket& socket, Handshake& handshake,
                                                  std::string peer) {
  co_await tcp_wire::run_handshake(socket, handshake, std::move(peer));
  co_return handshake.result();
}

asio::awaitable<void> accept_one(std::shared_ptr<TransportState> state,
                                 std::shared_ptr<tcp::socket> socket_ptr, Admission::Ticket ticket,
                                 std::string prefix) {
  // The ticket was taken by accept_loop (before this coroutine started).
  struct Release {
    TransportState& state;
    Admission::Ticket ticket;
    ~Release() {
      state.admission.end_handshake(ticket);
      state.handshake_sockets.erase(ticket);
    }
  } release{*state, ticket};
  tcp::socket& socket = *socket_ptr;
  asio::error_code ec;
  socket.set_option(tcp::no_delay(true), ec);
  auto endpoint = socket.remote_endpoint(ec);
  const std::string peer = ec ? std::string("?") : tcp_wire::endpoint_text(endpoint);
  Handshake handshake(Handshake::Role::responder, state->identity,
                      state->handshake_config(std::nullopt));
  std::optional<HandshakeResult> result;
  try {
    result = co_await async::race_deadline(answer_handshake(socket, handshake, peer),
                                           state->options.handshake_timeout);
    if (!result) {
      // Debug only: a flood of silent sockets must not become a flood of log lines.
      tcp_metrics::counters().handshakes_failed.inc();
      log::debug("inbound handshake from {} timed out after {}", peer,
                 ms_text(state->options.handshake_timeout));
      co_return;
    }
  } catch (const Error& e) {
    tcp_metrics::counters().handshakes_failed.inc();
    if (e.code() == Errc::resource_exhausted) {
      state->note_refusal(peer, e.what());
    } else if (e.code() == Errc::unavailable) {
      log::debug("inbound handshake from {} ended: {}", peer, e.what());
    } else {
      log::warn("refused inbound connection from {}: {}", peer, e.what());
    }
    co_return;
  } catch (const std::exception& e) {
    tcp_metrics::counters().handshakes_failed.inc();
    log::warn("refused inbound connection from {}: {}", peer, e.what());
    co_return;
  }
  tcp_metrics::counters().handshakes_ok.inc();
  if (state->closed || !state->on_accept) co_return;
  // Checked again: handshakes of one identity may have run side by side.
  Admission::Connection counted{result->remote_peer, std::move(prefix), /*inbound=*/true};
  std::string refusal;
  if (!state->admission.add_connection(counted, &refusal)) {
    state->note_refusal(peer, refusal);
    co_return;
  }
  auto remote_listen = listen_address_of(socket, *result);
  auto connection = std::make_shared<TcpConnection>(std::move(socket), *result, state->options,
                                                    state->body_budget, std::move(remote_listen),
                                                    state->uncount_on_close(counted));
  log::debug("accepted peer {} from {} ({})", result->remote_peer.to_string(), peer,
             cipher_name(result->cipher));
  state->track(connection);
  try {
    state->on_accept(connection);
  } catch (const std::exception& e) {
    log::error("on_accept handler threw: {}", e.what());
    connection->close();
  }
}

// Starts the handshake of an accepted socket if the admission policy lets it
// (refusing costs one accept and one close: no handshake byte is read).
void admit(TransportState& state, tcp::socket socket) {
  asio::error_code ec;
  const auto endpoint = socket.remote_endpoint(ec);
  if (ec) return;  // gone already
  const std::string prefix = address_prefix(endpoint.address());
  auto verdict = state.admission.begin_handshake(prefix);
  if (!verdict.admitted) {
    state.note_refusal(tcp_wire::endpoint_text(endpoint), verdict.refusal);
    return;  // the socket closes as it goes out of scope
  }
  if (verdict.evicted) {
    auto victim = state.handshake_sockets.find(*verdict.evicted);
    if (victim != state.handshake_sockets.end()) {
      victim->second->close(ec);  // its handshake fails and releases the rest
      state.handshake_sockets.erase(victim);
    }
    state.note_refusal(prefix, "oldest handshake aborted for a newcomer from another prefix");
  }
  auto socket_ptr = std::make_shared<tcp::socket>(std::move(socket));
  state.handshake_sockets.emplace(verdict.ticket, socket_ptr);
  asio::co_spawn(
      state.executor,
      accept_one(state.shared_from_this(), std::move(socket_ptr), verdict.ticket, prefix),
      asio::detached);
}

asio::awaitable<void> accept_loop(std::shared_ptr<TransportState> state) {
  asio::steady_timer backoff(state->executor);
  while (!state->closed && state->acceptor) {
    auto [ec, socket] = co_await state->acceptor->async_accept(as_tuple(asio::use_awaitable));
    if (state->closed) break;
    if (ec) {
      if (ec == asio::error::operation_aborted) break;
      // Out of file descriptors and the like: wait a little instead of spinning.
      log::warn("accept failed: {}", ec.message());
      backoff.expires_after(std::chrono::milliseconds(100));
      co_await backoff.async_wait(as_tuple(asio::use_awaitable));
      continue;
    }
    admit(*state, std::move(socket));
  }
}

class TcpTransport final : public Transport {
 public:
  explicit TcpTransport(std::shared_ptr<TransportState> state) : state_(std::move(state)) {}
  ~TcpTransport() override { state_->close(); }

  asio::any_io_executor get_executor() override { return state_->executor; }

  asio::awaitable<ConnectionPtr> connect(const PeerAddress& address) override {
    auto state = state_;
    if (state->closed) throw Error(Errc::unavailable, "transport is closed");
    const PeerAddress target = address;  // the caller's reference may not outlive a suspension
    tcp::socket socket(state->executor);
    Handshake handshake(Handshake::Role::initiator, state->identity,
                        state->handshake_config(target.peer));
    bool connected = false;
    struct CountFailure {  // a guard, not try/catch: GCC 12 mis-warns on rethrow here
      bool succeeded = false;
      ~CountFailure() {
        if (!succeeded) tcp_metrics::counters().handshakes_failed.inc();
      }
    } count_failure;
    auto result = co_await async::race_deadline(
        dial_and_handshake(socket, target, handshake, connected), state->options.handshake_timeout);
    if (!result) {
      if (!connected)
        throw Error(Errc::unavailable, "cannot connect to " + target.to_string() +
                                           ": timed out after " +
                                           ms_text(state->options.handshake_timeout));
      throw Error(Errc::deadline_exceeded, "handshake with " + target.to_string() +
                                               " timed out after " +
                                               ms_text(state->options.handshake_timeout));
    }
    count_failure.succeeded = true;
    tcp_metrics::counters().handshakes_ok.inc();
    if (state->closed) throw Error(Errc::unavailable, "transport closed while connecting");
    auto remote_listen = listen_address_of(socket, *result);
    Admission::Connection counted{result->remote_peer, {}, /*inbound=*/false};
    state->admission.add_connection(counted);  // never refused: this peer chose to dial
    auto connection = std::make_shared<TcpConnection>(std::move(socket), *result, state->options,
                                                      state->body_budget, std::move(remote_listen),
                                                      state->uncount_on_close(counted));
    state->track(connection);
    co_return connection;
  }

  void listen(std::function<void(ConnectionPtr)> on_accept) override {
    if (state_->options.client_mode || state_->closed) return;
    state_->on_accept = std::move(on_accept);
    if (state_->listening) return;
    state_->listening = true;
    asio::co_spawn(state_->executor, accept_loop(state_), asio::detached);
  }

  PeerAddress local_address() const override {
    return PeerAddress{state_->identity.peer_id(), state_->listen_on.host,
                       state_->announced_port()};
  }

  void close() noexcept override { state_->close(); }
  std::size_t close_if(const std::function<bool(const Connection&)>& condition) override {
    return state_->close_if(condition);
  }

 private:
  std::shared_ptr<TransportState> state_;
};

}  // namespace

TransportPtr make_tcp_transport(asio::any_io_executor executor, const Identity& identity,
                                TcpEndpoint listen_on, TransportOptions options) {
  if (options.own_token.size() > Handshake::max_token_size)
    throw Error(Errc::invalid_argument,
                "membership token of " + std::to_string(options.own_token.size()) +
                    " bytes exceeds the limit of " + std::to_string(Handshake::max_token_size));
  auto state = std::make_shared<TransportState>(std::move(executor), identity, std::move(listen_on),
                                                std::move(options));
  if (!state->options.client_mode) state->bind();
  return std::make_shared<TcpTransport>(std::move(state));
}

}  // namespace apiary
