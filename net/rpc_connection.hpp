#pragma once
// One multiplexed RPC connection (internal to net/rpc*): pending outbound calls,
// inbound handler coroutines and streams over one transport Connection, with
// the frame format of net/rpc_frame.hpp. Lives on the node's executor.
// Errors: throws apiary::Error; a malformed frame closes this connection only.
#include "core/async.hpp"
#include "core/error.hpp"
#include "core/metrics.hpp"
#include "net/rpc.hpp"
#include "net/transport.hpp"

#include <asio/cancellation_signal.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>

namespace apiary::rpc::detail {

using apiary::deadline_after;
using apiary::async::Event;

struct StringHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const noexcept {
    return std::hash<std::string_view>{}(s);
  }
};

// Registered handlers, shared by the node and its connections.
struct HandlerTable {
  std::unordered_map<std::string, UnaryHandler, StringHash, std::equal_to<>> unary;
  std::unordered_map<std::string, StreamHandler, StringHash, std::equal_to<>> streams;
};

// Process-wide RPC instruments (metrics::Registry::global()).
struct RpcMetrics {
  metrics::Counter& calls;           // outbound unary calls started
  metrics::Counter& errors;          // outbound calls that failed
  metrics::Counter& handled;         // inbound requests handled
  metrics::Counter& late_responses;  // responses for calls no longer waiting
  metrics::Counter& bytes_sent;      // frame bytes handed to transports
  metrics::Counter& bytes_received;  // frame bytes received
  metrics::Histogram& latency;       // outbound unary call latency, seconds
};
RpcMetrics& rpc_metrics();

class StreamImpl;

class RpcConnection : public std::enable_shared_from_this<RpcConnection> {
 public:
  using Clock = std::chrono::steady_clock;

  RpcConnection(asio::any_io_executor executor, ConnectionPtr connection, bool dialer,
                std::shared_ptr<HandlerTable> handlers, RpcOptions options,
                std::function<void(RpcConnection&)> on_closed);
  ~RpcConnection();
  RpcConnection(const RpcConnection&) = delete;
  RpcConnection& operator=(const RpcConnection&) = delete;

  // Starts the frame reader.
  void start();

  asio::awaitable<Bytes> call(std::string_view method, Bytes request, Clock::time_point deadline);
  asio::awaitable<StreamPtr> open_stream(std::string_view method, Clock::time_point deadline);

  // Fails pending calls and streams with `reason` and closes the transport connection.
  void close(Errc reason, std::string_view why) noexcept;
  bool is_open() const noexcept { return open_; }
  // No work (RpcOptions::idle_timeout says what counts) for `idle`, and no
  // outbound call or stream of this side in flight (those have deadlines).
  bool is_idle(Clock::time_point now, Clock::duration idle) const noexcept;
  const PeerId& remote_peer() const noexcept { return connection_->remote_peer(); }
  bool dialer() const noexcept { return dialer_; }
  asio::any_io_executor executor() const { return executor_; }
  const RpcOptions& options() const noexcept { return options_; }

  // Frame output for streams and handlers (counted in metrics); `work` frames
  // keep the connection from the idle sweep.
  asio::awaitable<void> send(Bytes frame, bool work = true);
  // Sends without waiting (credit, cancel, reset frames; not work); failures are ignored.
  void send_detached(Bytes frame);
  void forget_stream(std::uint64_t id) noexcept { streams_.erase(id); }

 private:
  struct PendingCall {
    explicit PendingCall(const asio::any_io_executor& executor) : event(executor) {}
    Event event;
    std::optional<Bytes> result;
    std::optional<Error> error;
  };
  struct InboundCall {
    asio::cancellation_signal signal;
    bool cancelled = false;
  };

  asio::awaitable<void> read_loop();
  // Takes the message: payloads that end it are handed on without a copy.
  void handle_frame(Bytes& message);
  void start_handler(std::uint64_t id, std::string_view method, Bytes payload);
  void start_stream_handler(std::uint64_t id, std::string_view method);
  asio::awaitable<void> run_unary(std::uint64_t id, UnaryHandler handler, Bytes request,
                                  bool keepalive);
  bool is_keepalive(std::string_view method) const noexcept;
  asio::awaitable<void> run_stream(std::uint64_t id, StreamHandler handler,
                                   std::shared_ptr<StreamImpl> stream);
  RequestContext context() const;
  std::uint64_t next_id() noexcept;
  // Ids this side allocated: odd for the dialer, even for the acceptor.
  bool is_local_id(std::uint64_t id) const noexcept { return (id % 2 == 1) == dialer_; }
  std::shared_ptr<StreamImpl> find_stream(std::uint64_t id) const;

  ConnectionPtr connection_;
  bool dialer_;
  std::shared_ptr<HandlerTable> handlers_;
  RpcOptions options_;
  std::function<void(RpcConnection&)> on_closed_;
  asio::any_io_executor executor_;
  bool open_ = true;
  std::uint64_t id_counter_ = 0;
  Clock::time_point last_work_;
  std::unordered_map<std::uint64_t, PendingCall*> pending_;
  std::unordered_map<std::uint64_t, InboundCall> inbound_;
  std::unordered_map<std::uint64_t, std::weak_ptr<StreamImpl>> streams_;
  RpcMetrics& metrics_;
};

}  // namespace apiary::rpc::detail
