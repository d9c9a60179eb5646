#include "net/rpc_connection.hpp"

#include "core/log.hpp"
#include "net/rpc_frame.hpp"
#include "net/rpc_stream.hpp"

#include <asio/bind_cancellation_slot.hpp>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/error.hpp>
#include <asio/this_coro.hpp>

#include <algorithm>
#include <string>
#include <system_error>
#include <vector>

namespace apiary::rpc::detail {

RpcMetrics& rpc_metrics() {
  static RpcMetrics instruments{
      metrics::Registry::global().counter("apiary_rpc_calls_total", "Outbound unary RPC calls"),
      metrics::Registry::global().counter("apiary_rpc_errors_total",
                                          "Outbound RPC calls that failed"),
      metrics::Registry::global().counter("apiary_rpc_handled_total",
                                          "Inbound RPC requests handled"),
      metrics::Registry::global().counter("apiary_rpc_late_responses_total",
                                          "Responses that arrived after their call gave up"),
      metrics::Registry::global().counter("apiary_rpc_bytes_sent_total", "RPC frame bytes sent"),
      metrics::Registry::global().counter("apiary_rpc_bytes_received_total",
                                          "RPC frame bytes received"),
      metrics::Registry::global().histogram("apiary_rpc_latency_seconds",
                                            "Outbound unary RPC latency"),
  };
  return instruments;
}

namespace {

// Maps what a handler or transport threw to a code and message for the wire.
std::pair<Errc, std::string> describe(std::exception_ptr error) {
  try {
    std::rethrow_exception(error);
  } catch (const Error& e) {
    return {e.code(), e.what()};
  } catch (const std::system_error& e) {
    if (e.code() == asio::error::operation_aborted) return {Errc::cancelled, "cancelled"};
    return {Errc::internal, e.what()};
  } catch (const std::exception& e) {
    return {Errc::internal, e.what()};
  } catch (...) {
    return {Errc::internal, "unknown exception"};
  }
}

}  // namespace

RpcConnection::RpcConnection(asio::any_io_executor executor, ConnectionPtr connection, bool dialer,
                             std::shared_ptr<HandlerTable> handlers, RpcOptions options,
                             std::function<void(RpcConnection&)> on_closed)
    : connection_(std::move(connection)),
      dialer_(dialer),
      handlers_(std::move(handlers)),
      options_(options),
      on_closed_(std::move(on_closed)),
      executor_(std::move(executor)),
      last_work_(Clock::now()),
      metrics_(rpc_metrics()) {}

RpcConnection::~RpcConnection() {
  if (open_) connection_->close();
}

void RpcConnection::start() {
  asio::co_spawn(
      executor_,
      [self = shared_from_this()]() -> asio::awaitable<void> { co_await self->read_loop(); },
      asio::detached);
}

std::uint64_t RpcConnection::next_id() noexcept {
  ++id_counter_;
  return dialer_ ? 2 * id_counter_ - 1 : 2 * id_counter_;
}

bool RpcConnection::is_idle(Clock::time_point now, Clock::duration idle) const noexcept {
  if (!pending_.empty() || now - last_work_ < idle) return false;
  // Inbound handlers and streams do not count: a peer could keep them waiting
  // forever (e.g. by never reading the reply); they refresh last_work_ instead.
  for (const auto& [id, stream] : streams_)
    if (is_local_id(id)) return false;
  return true;
}

bool RpcConnection::is_keepalive(std::string_view method) const noexcept {
  return std::find(options_.keepalive_methods.begin(), options_.keepalive_methods.end(), method) !=
         options_.keepalive_methods.end();
}

RequestContext RpcConnection::context() const {
  RequestContext ctx;
  ctx.peer = connection_->remote_peer();
  ctx.key = connection_->remote_key();
  ctx.reply_address = connection_->remote_listen_address();
  ctx.network = connection_->remote_network();
  return ctx;
}

std::shared_ptr<StreamImpl> RpcConnection::find_stream(std::uint64_t id) const {
  auto it = streams_.find(id);
  return it == streams_.end() ? nullptr : it->second.lock();
}

asio::awaitable<void> RpcConnection::send(Bytes frame, bool work) {
  if (!open_) throw Error(Errc::connection_closed, "rpc connection closed");
  if (work) last_work_ = Clock::now();
  metrics_.bytes_sent.inc(frame.size());
  co_await connection_->send(std::move(frame));
}

void RpcConnection::send_detached(Bytes frame) {
  if (!open_) return;
  asio::co_spawn(
      executor_,
      [self = shared_from_this(), frame = std::move(frame)]() mutable -> asio::awaitable<void> {
        try {
          co_await self->send(std::move(frame), /*work=*/false);
        } catch (...) {
          // Best effort: a dropped connection fails everything anyway.
        }
      },
      asio::detached);
}

void RpcConnection::close(Errc reason, std::string_view why) noexcept {
  if (!open_) return;
  open_ = false;
  connection_->close();
  const std::string message =
      "rpc connection to " + remote_peer().to_string() + " closed: " + std::string(why);
  for (auto& [id, call] : pending_) {
    call->error = Error(reason, message);
    call->event.notify();
  }
  for (auto& [id, call] : inbound_) {
    call.cancelled = true;
    call.signal.emit(asio::cancellation_type::terminal);
  }
  // Streams may forget themselves while failing: iterate over a snapshot.
  std::vector<std::shared_ptr<StreamImpl>> streams;
  for (auto& [id, weak] : streams_) {
    if (auto stream = weak.lock()) streams.push_back(std::move(stream));
  }
  streams_.clear();
  for (auto& stream : streams) stream->fail(reason, message);
  if (on_closed_) {
    auto callback = std::move(on_closed_);
    callback(*this);
  }
}

asio::awaitable<void> RpcConnection::read_loop() {
  auto self = shared_from_this();
  Errc reason = Errc::connection_closed;
  std::string why = "peer closed the connection";
  try {
    while (open_) {
      Bytes message = co_await connection_->receive();
      metrics_.bytes_received.inc(message.size());
      handle_frame(message);
    }
  } catch (const Error& e) {
    if (e.code() == Errc::bad_message) {
      log::warn("rpc: malformed frame from {}: {}; closing that connection",
                remote_peer().to_string(), e.what());
    }
    why = e.what();
  } catch (const std::exception& e) {
    why = e.what();
  }
  close(reason, why);
}

namespace {

// The payload of `frame` as its own buffer. A payload that ends the message (the
// last element of request, response and stream_data frames) is cut out of the
// message in place — a memmove instead of a new allocation and a copy.
Bytes take_payload(Bytes& message, ByteSpan payload) {
  const auto offset = static_cast<std::size_t>(payload.data() - message.data());
  if (payload.empty()) return {};
  if (offset + payload.size() != message.size()) return Bytes(payload.begin(), payload.end());
  Bytes owned = std::move(message);
  owned.erase(owned.begin(), owned.begin() + static_cast<std::ptrdiff_t>(offset));
  return owned;
}

}  // namespace

void RpcConnection::handle_frame(Bytes& message) {
  const Frame frame = decode_frame(message);
  const bool local = is_local_id(frame.id);
  switch (frame.type) {
    case FrameType::request:
      if (local || frame.id == 0) throw Error(Errc::bad_message, "rpc: request with a local id");
      {
        const std::string method(frame.method);  // the payload takes over the message
        start_handler(frame.id, method, take_payload(message, frame.payload));
      }
      return;
    case FrameType::response:
    case FrameType::error: {
      auto it = pending_.find(frame.id);
      if (it == pending_.end()) {
        metrics_.late_responses.inc();
        return;
      }
      PendingCall& call = *it->second;
      pending_.erase(it);
      last_work_ = Clock::now();
      if (frame.type == FrameType::response) {
        call.result.emplace(take_payload(message, frame.payload));
      } else {
        call.error = Error(frame.code, std::string(frame.message));
      }
      call.event.notify();
      return;
    }
    case FrameType::cancel: {
      auto it = inbound_.find(frame.id);
      if (it != inbound_.end() && !it->second.cancelled) {
        it->second.cancelled = true;
        it->second.signal.emit(asio::cancellation_type::terminal);
      }
      return;
    }
    case FrameType::stream_open:
      if (local || frame.id == 0)
        throw Error(Errc::bad_message, "rpc: stream_open with a local id");
      start_stream_handler(frame.id, frame.method);
      return;
    case FrameType::stream_data:
      if (auto stream = find_stream(frame.id)) {
        last_work_ = Clock::now();
        // The data stays where it is, after the frame header (no copy, no move).
        const auto offset = frame.payload.empty()
                                ? message.size()
                                : static_cast<std::size_t>(frame.payload.data() - message.data());
        if (!frame.payload.empty() && offset + frame.payload.size() == message.size()) {
          stream->on_data(std::move(message), offset);
        } else {
          stream->on_data(Bytes(frame.payload.begin(), frame.payload.end()), 0);
        }
      } else {
        send_detached(encode_stream_reset(frame.id, Errc::not_found, "no such stream"));
      }
      return;
    case FrameType::stream_credit:
      if (auto stream = find_stream(frame.id)) stream->on_credit(frame.credit);
      return;
    case FrameType::stream_close:
      if (auto stream = find_stream(frame.id)) stream->on_close();
      return;
    case FrameType::stream_reset:
      if (auto stream = find_stream(frame.id)) stream->on_reset(frame.code, frame.message);
      return;
  }
}

void RpcConnection::start_handler(std::uint64_t id, std::string_view method, Bytes payload) {
  auto handler = handlers_->unary.find(method);
  if (handler == handlers_->unary.end()) {
    send_detached(encode_error(id, Errc::not_found, "unknown method " + std::string(method)));
    return;
  }
  if (inbound_.size() >= options_.max_inbound_calls) {
    send_detached(
        encode_error(id, Errc::resource_exhausted, "too many concurrent requests and streams"));
    return;
  }
  auto [entry, inserted] = inbound_.try_emplace(id);
  if (!inserted) throw Error(Errc::bad_message, "rpc: duplicate request id");
  metrics_.handled.inc();
  const bool keepalive = is_keepalive(method);
  if (!keepalive) last_work_ = Clock::now();
  // The entry (and its cancellation signal) is erased only once the handler
  // coroutine has fully completed, as asio still uses the slot until then.
  asio::co_spawn(executor_, run_unary(id, handler->second, std::move(payload), keepalive),
                 asio::bind_cancellation_slot(entry->second.signal.slot(),
                                              [self = shared_from_this(), id](std::exception_ptr) {
                                                self->inbound_.erase(id);
                                              }));
}

asio::awaitable<void> RpcConnection::run_unary(std::uint64_t id, UnaryHandler handler,
                                               Bytes request, bool keepalive) {
  auto self = shared_from_this();
  Bytes reply;
  std::exception_ptr failure;
  try {
    reply = co_await handler(context(), std::move(request));
  } catch (...) {
    failure = std::current_exception();
  }
  auto it = inbound_.find(id);
  if (!open_ || it == inbound_.end() || it->second.cancelled) co_return;
  Bytes frame;
  if (failure) {
    auto [code, message] = describe(failure);
    frame = encode_error(id, code, message);
  } else {
    frame = encode_response(id, reply);
  }
  bool send_failed = false;
  std::string send_error;
  try {
    co_await send(std::move(frame), /*work=*/!keepalive);
  } catch (const Error& e) {
    send_failed = true;
    send_error = e.what();
  } catch (...) {
    send_failed = true;
  }
  // E.g. a reply over the frame size limit: tell the caller instead of letting it time out.
  if (send_failed && open_) {
    send_detached(encode_error(id, Errc::resource_exhausted, "reply not sent: " + send_error));
  }
}

void RpcConnection::start_stream_handler(std::uint64_t id, std::string_view method) {
  auto handler = handlers_->streams.find(method);
  if (handler == handlers_->streams.end()) {
    send_detached(
        encode_error(id, Errc::not_found, "unknown stream method " + std::string(method)));
    return;
  }
  if (streams_.contains(id)) throw Error(Errc::bad_message, "rpc: duplicate stream id");
  if (inbound_.size() >= options_.max_inbound_calls) {  // the same budget as calls
    send_detached(
        encode_error(id, Errc::resource_exhausted, "too many concurrent requests and streams"));
    return;
  }
  last_work_ = Clock::now();
  auto stream = std::make_shared<StreamImpl>(shared_from_this(), id);
  streams_[id] = stream;
  auto [entry, inserted] = inbound_.try_emplace(id);
  if (!inserted) throw Error(Errc::bad_message, "rpc: stream id in use");
  asio::co_spawn(executor_, run_stream(id, handler->second, std::move(stream)),
                 asio::bind_cancellation_slot(entry->second.signal.slot(),
                                              [self = shared_from_this(), id](std::exception_ptr) {
                                                self->inbound_.erase(id);
                                              }));
}

asio::awaitable<void> RpcConnection::run_stream(std::uint64_t id, StreamHandler handler,
                                                std::shared_ptr<StreamImpl> stream) {
  auto self = shared_from_this();
  std::exception_ptr failure;
  try {
    co_await send(encode_response(id, {}));
    stream->grant_initial_window();
    co_await handler(context(), stream);
    // A handler that returns without closing its side closes it gracefully.
    co_await stream->close_write();
  } catch (...) {
    failure = std::current_exception();
  }
  if (failure) {
    auto [code, message] = describe(failure);
    if (open_) send_detached(encode_stream_reset(id, code, message));
    stream->fail(code, message);
    forget_stream(id);
  }
}

asio::awaitable<Bytes> RpcConnection::call(std::string_view method, Bytes request,
                                           Clock::time_point deadline) {
  if (!open_) throw Error(Errc::connection_closed, "rpc connection closed");
  if (pending_.size() >= options_.max_pending_calls) {
    throw Error(Errc::resource_exhausted, "too many pending calls on one connection");
  }
  auto self = shared_from_this();
  const std::uint64_t id = next_id();
  PendingCall pending(executor_);
  pending_.emplace(id, &pending);
  struct Unregister {
    RpcConnection& connection;
    std::uint64_t id;
    ~Unregister() { connection.pending_.erase(id); }
  } unregister{*this, id};

  bool answered = false;
  try {
    co_await send(encode_request(id, method, request));
    answered = co_await pending.event.wait_until(deadline);
  } catch (...) {
    // Cancelled (or the send failed): the peer need not finish the work.
    if (!pending.result && !pending.error) send_detached(encode_cancel(id));
    throw;
  }
  if (!answered) {
    send_detached(encode_cancel(id));
    throw Error(Errc::deadline_exceeded, "rpc " + std::string(method) + " to " +
                                             remote_peer().to_string() + ": deadline exceeded");
  }
  if (pending.error) throw *pending.error;
  co_return std::move(*pending.result);
}

asio::awaitable<StreamPtr> RpcConnection::open_stream(std::string_view method,
                                                      Clock::time_point deadline) {
  if (!open_) throw Error(Errc::connection_closed, "rpc connection closed");
  auto self = shared_from_this();
  const std::uint64_t id = next_id();
  auto stream = std::make_shared<StreamImpl>(self, id);
  streams_[id] = stream;
  PendingCall pending(executor_);
  pending_.emplace(id, &pending);
  struct Unregister {
    RpcConnection& connection;
    std::uint64_t id;
    ~Unregister() { connection.pending_.erase(id); }
  } unregister{*this, id};

  co_await send(encode_stream_open(id, method));
  // Granting right away lets the handler start writing without another round trip.
  stream->grant_initial_window();
  if (!co_await pending.event.wait_until(deadline)) {
    throw Error(Errc::deadline_exceeded,
                "open stream " + std::string(method) + ": deadline exceeded");
  }
  if (pending.error) {
    stream->fail(pending.error->code(), pending.error->what());
    throw *pending.error;
  }
  co_return stream;
}

}  // namespace apiary::rpc::detail
