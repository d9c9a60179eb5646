#pragma once
// Transport interface: authenticated, message-oriented connections between peers.
//
// Implementations: TcpTransport (net/tcp_transport.hpp — handshake + AEAD
// frames over TCP), InprocNetwork/InprocTransport (net/inproc_transport.hpp —
// thousands of peers in one process, used by protocol tests), and LinkEmulator
// (net/link_emulator.hpp — wraps any transport, adds latency, jitter, a
// bandwidth cap and random disconnects).
//
// Threading: a transport and its connections live on one executor (the peer's
// network thread); call them only from coroutines running there.
// Errors: awaitables throw apiary::Error (connection_closed, unavailable,
// permission_denied for a peer id mismatch or refused token, deadline_exceeded).
#include "core/bytes.hpp"
#include "net/address.hpp"
#include "net/admission.hpp"

#include <asio/any_io_executor.hpp>
#include <asio/awaitable.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>

namespace apiary {

class Connection {
 public:
  virtual ~Connection() = default;

  // The authenticated identity of the other side.
  virtual const PeerId& remote_peer() const noexcept = 0;
  virtual const PublicKey& remote_key() const noexcept = 0;
  // Where the other side accepts connections (its observed host and the port it
  // announced in the handshake); nullopt for a client-mode peer.
  virtual std::optional<PeerAddress> remote_listen_address() const = 0;
  // The network the other side's packets come from (its socket address's /24
  // or /64, net/admission.hpp): what per-source quotas charge, since a stranger
  // can mint identities for free but not addresses ("inproc" in process).
  virtual std::string remote_network() const = 0;
  // The membership token the other side presented in the handshake (empty in
  // an open run), so that a periodic check can end a membership that expired
  // or was revoked after the handshake (Transport::close_if).
  virtual ByteSpan remote_token() const noexcept = 0;

  // Sends one message (at most max_message_size bytes). Messages arrive whole
  // and in order. Completes once the message is handed to the wire; concurrent
  // sends are queued in call order.
  virtual asio::awaitable<void> send(Bytes message) = 0;
  // Next message from the peer; throws Error{connection_closed} at end.
  virtual asio::awaitable<Bytes> receive() = 0;

  virtual void close() noexcept = 0;
  virtual bool is_open() const noexcept = 0;
};

using ConnectionPtr = std::shared_ptr<Connection>;

struct TransportOptions {
  std::size_t max_message_size = 16u << 20;  // frame limit (default 16 MiB)
  std::chrono::milliseconds handshake_timeout{5000};
  // TCP only. Once a frame's header arrived, its body must follow within
  // frame_body_timeout plus body size / frame_body_min_rate, or the connection
  // is closed: a peer cannot hold a receive buffer by stalling mid-frame.
  std::chrono::milliseconds frame_body_timeout{20000};
  std::size_t frame_body_min_rate = 256u << 10;  // bytes per second (2 Mbit/s)
  // TCP only: bodies up to this many bytes in all (over the transport's
  // connections) are allocated whole when their header arrives; others grow
  // with what arrived (net/body_budget.hpp).
  std::size_t frame_body_budget = 32u << 20;
  // TCP only: connection and handshake limits for inbound peers (net/admission.hpp).
  ConnectionLimits limits;
  // Membership (permissioned runs): the token this peer presents, and a check
  // applied to every remote peer's token; a refusal closes the connection
  // with Errc::permission_denied. Empty check = open run.
  Bytes own_token;
  std::function<bool(const PublicKey& remote, ByteSpan token)> admit;
  // Client mode: announce no listen port; never accept connections.
  bool client_mode = false;
};

class Transport {
 public:
  virtual ~Transport() = default;

  virtual asio::any_io_executor get_executor() = 0;
  // Dials `address` and authenticates; throws Error{permission_denied} when the
  // key presented does not hash to address.peer.
  virtual asio::awaitable<ConnectionPtr> connect(const PeerAddress& address) = 0;
  // Starts accepting; `on_accept` runs on the executor for every authenticated
  // inbound connection.
  virtual void listen(std::function<void(ConnectionPtr)> on_accept) = 0;
  // This peer's printable address (after listen(); port resolved if it was 0).
  virtual PeerAddress local_address() const = 0;
  // Stops accepting and closes every connection.
  virtual void close() noexcept = 0;
  // Closes every open connection (inbound and outbound) for which `condition`
  // holds, as if the peer had dropped it; returns how many it closed.
  virtual std::size_t close_if(const std::function<bool(const Connection&)>& condition) = 0;
};

using TransportPtr = std::shared_ptr<Transport>;

}  // namespace apiary
