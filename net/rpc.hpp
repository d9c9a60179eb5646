#pragma once
// RPC over a Transport: unary calls and bidirectional, flow-controlled streams,
// multiplexed over one connection per peer pair (either side may call the
// other on it). Handlers are registered by method name ("dht.find").
//
// Every call has a deadline (CallOptions::timeout) and honours asio
// cancellation (per-operation cancellation slots, e.g. through
// awaitable_operators `||`): a cancelled or timed-out call completes at once
// and its late response is dropped.
//
// Errors: awaitables throw apiary::Error. A handler that throws apiary::Error
// sends that code and message to the caller; any other exception becomes
// Errc::internal. Malformed frames close only the offending connection.
// Threading: all methods run on the node's executor (its network thread).
#include "core/bytes.hpp"
#include "core/error.hpp"
#include "net/transport.hpp"

#include <asio/awaitable.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace apiary::rpc {

struct CallOptions {
  std::chrono::milliseconds timeout{5000};
};

struct RequestContext {
  PeerId peer;                               // authenticated caller
  PublicKey key;                             // caller's public key
  std::optional<PeerAddress> reply_address;  // where the caller listens (nullopt: client mode)
  std::string network;                       // the caller's /24 or /64 (Connection::remote_network)
};

// Bytes a write_framed() frame reserves in front of its message for the stream's framing.
inline constexpr std::size_t kStreamHeadroom = 16;

// A received stream message that may sit at an offset inside its buffer (the
// transport's frame), so that it reaches the reader without a copy.
struct StreamMessage {
  Bytes storage;
  std::size_t offset = 0;
  ByteSpan view() const { return ByteSpan(storage).subspan(offset); }
  std::size_t size() const { return storage.size() - offset; }
};

// One direction of a stream carries a sequence of messages; the receiver grants
// credit (window in bytes) so a fast sender cannot grow the receiver's memory
// beyond the window.
class Stream {
 public:
  virtual ~Stream() = default;
  virtual const PeerId& peer() const noexcept = 0;
  // Waits for window credit, then sends one message.
  virtual asio::awaitable<void> write(Bytes message) = 0;
  // Next message; nullopt once the other side called close_write().
  // Throws Error{deadline_exceeded} after `timeout`, Error{cancelled}/
  // {connection_closed} when the stream is reset.
  virtual asio::awaitable<std::optional<Bytes>> read(
      std::chrono::milliseconds timeout = std::chrono::milliseconds{30000}) = 0;
  // Zero-copy forms. write_framed(): `frame` is kStreamHeadroom bytes of
  // scratch space followed by the message; the stream writes its framing
  // into the scratch space and hands the whole buffer to the transport.
  // read_message(): like read(), without moving the message to the front of
  // its buffer. The defaults fall back to write()/read().
  virtual asio::awaitable<void> write_framed(Bytes frame);
  virtual asio::awaitable<std::optional<StreamMessage>> read_message(
      std::chrono::milliseconds timeout = std::chrono::milliseconds{30000});
  // Half-close: the peer's read() returns nullopt after the last message.
  virtual asio::awaitable<void> close_write() = 0;
  // Resets both directions; the peer sees Error{cancelled}.
  virtual void cancel() noexcept = 0;
};

using StreamPtr = std::shared_ptr<Stream>;
using UnaryHandler = std::function<asio::awaitable<Bytes>(const RequestContext&, Bytes request)>;
using StreamHandler = std::function<asio::awaitable<void>(const RequestContext&, StreamPtr stream)>;

struct RpcOptions {
  std::size_t stream_window_bytes = 4u << 20;  // per-direction credit
  std::size_t max_pending_calls = 65536;       // outbound calls waiting, per connection
  // Calls and streams the peer may have this side handle at once, per
  // connection (one budget for both); beyond it they fail with resource_exhausted.
  std::size_t max_inbound_calls = 4096;
  std::chrono::milliseconds connect_timeout{5000};
  // A connection that did no work this long is closed, whoever keeps it alive:
  // work is a call or stream of a method other than keepalive_methods (either
  // direction) or stream data. Pings, unknown methods, credit and reset frames
  // do not count, and neither does a handler that waits to send its reply.
  std::chrono::milliseconds idle_timeout{120000};
  std::vector<std::string> keepalive_methods{"ping", "dht.ping"};
};

class RpcNode {
 public:
  // Every node answers "ping" by echoing the payload (so `apiary ping` reaches
  // any apiary process); add_method("ping", …) replaces it.
  explicit RpcNode(TransportPtr transport, RpcOptions options = {});
  ~RpcNode();
  RpcNode(const RpcNode&) = delete;
  RpcNode& operator=(const RpcNode&) = delete;

  void add_method(std::string name, UnaryHandler handler);
  void add_stream_method(std::string name, StreamHandler handler);

  // Starts accepting connections (no-op for a client-mode transport).
  void start();
  // Closes every connection and fails pending calls with Errc::cancelled.
  void stop();

  PeerAddress local_address() const;
  const PeerId& peer_id() const;
  asio::any_io_executor get_executor() const;
  Transport& transport() noexcept;

  // Unary call; reuses (or dials, and re-dials after a drop) the pooled
  // connection to `to.peer`.
  asio::awaitable<Bytes> call(const PeerAddress& to, std::string_view method, Bytes request,
                              CallOptions options = {});
  // Makes sure a pooled connection to `to.peer` exists (dials it if needed);
  // options.timeout bounds the dial. Lets callers time the handshake.
  asio::awaitable<void> connect(const PeerAddress& to, CallOptions options = {});
  // Open connections (pooled or not), for tests and status output.
  std::size_t connection_count() const noexcept;

  // Opens a stream; options.timeout bounds the open only.
  asio::awaitable<StreamPtr> open_stream(const PeerAddress& to, std::string_view method,
                                         CallOptions options = {});

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace apiary::rpc
