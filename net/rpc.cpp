// RpcNode: handler registry, connection pool (one connection per peer pair,
// dialed once however many calls wait for it), deadlines and metrics. The
// per-connection multiplexing lives in net/rpc_connection.cpp, streams in
// net/rpc_stream.cpp, the wire format in net/rpc_frame.cpp.
#include "net/rpc.hpp"

#include "core/async.hpp"
#include "core/log.hpp"
#include "net/rpc_connection.hpp"

#include <asio/bind_cancellation_slot.hpp>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/error.hpp>

#include <algorithm>
#include <system_error>
#include <unordered_map>
#include <vector>

namespace apiary::rpc {

using detail::Event;
using detail::RpcConnection;

namespace {

// A transport connect() with a deadline: the dial is cancelled when it expires,
// and a connection that completes after that is closed.
struct ConnectOp {
  explicit ConnectOp(const asio::any_io_executor& executor) : done(executor) {}
  Event done;
  asio::cancellation_signal signal;
  ConnectionPtr result;
  std::exception_ptr error;
  bool abandoned = false;
};

asio::awaitable<ConnectionPtr> connect_with_deadline(Transport& transport, PeerAddress to,
                                                     Deadline deadline,
                                                     std::chrono::milliseconds timeout) {
  auto executor = transport.get_executor();
  auto op = std::make_shared<ConnectOp>(executor);
  asio::co_spawn(executor, transport.connect(to),
                 asio::bind_cancellation_slot(
                     op->signal.slot(), [op](std::exception_ptr error, ConnectionPtr connection) {
                       if (op->abandoned) {
                         if (connection) connection->close();
                         return;
                       }
                       op->error = error;
                       op->result = std::move(connection);
                       op->done.notify();
                     }));
  if (!co_await op->done.wait_until(deadline)) {
    op->abandoned = true;
    op->signal.emit(asio::cancellation_type::terminal);
    throw Error(Errc::deadline_exceeded, "connect to " + to.to_string() + ": no answer within " +
                                             std::to_string(timeout.count()) + " ms");
  }
  if (op->error) std::rethrow_exception(op->error);
  if (!op->result) throw Error(Errc::unavailable, "connect to " + to.to_string() + " failed");
  co_return std::move(op->result);
}

// Turns asio / std errors escaping a call into apiary::Error.
[[noreturn]] void rethrow_as_error(std::exception_ptr failure, std::string_view what) {
  try {
    std::rethrow_exception(failure);
  } catch (const Error&) {
    throw;
  } catch (const std::system_error& e) {
    if (e.code() == asio::error::operation_aborted) {
      throw Error(Errc::cancelled, std::string(what) + ": cancelled");
    }
    throw Error(Errc::unavailable, std::string(what) + ": " + e.what());
  } catch (const std::exception& e) {
    throw Error(Errc::internal, std::string(what) + ": " + e.what());
  }
}

}  // namespace

struct RpcNode::Impl : std::enable_shared_from_this<RpcNode::Impl> {
  struct Dial {
    std::vector<Event*> waiters;
    std::shared_ptr<RpcConnection> result;
    std::optional<Error> error;
  };

  Impl(TransportPtr transport_in, RpcOptions options_in)
      : transport(std::move(transport_in)),
        options(options_in),
        executor(transport->get_executor()),
        own_id(transport->local_address().peer),
        sweeper(executor) {}

  TransportPtr transport;
  RpcOptions options;
  asio::any_io_executor executor;
  PeerId own_id;
  std::shared_ptr<detail::HandlerTable> handlers = std::make_shared<detail::HandlerTable>();
  std::unordered_map<PeerId, std::shared_ptr<RpcConnection>> pool;
  std::unordered_map<RpcConnection*, std::shared_ptr<RpcConnection>> all;
  std::unordered_map<PeerId, std::shared_ptr<Dial>> dials;
  asio::steady_timer sweeper;
  bool sweeping = false;
  bool stopped = false;

  std::shared_ptr<RpcConnection> adopt(ConnectionPtr connection, bool dialer) {
    std::weak_ptr<Impl> weak = weak_from_this();
    auto rpc_connection = std::make_shared<RpcConnection>(
        executor, std::move(connection), dialer, handlers, options, [weak](RpcConnection& closed) {
          if (auto impl = weak.lock()) impl->forget(closed);
        });
    all.emplace(rpc_connection.get(), rpc_connection);
    auto& pooled = pool[rpc_connection->remote_peer()];
    if (!pooled || !pooled->is_open()) pooled = rpc_connection;
    rpc_connection->start();
    start_sweeper();
    return rpc_connection;
  }

  void forget(RpcConnection& closed) {
    auto it = pool.find(closed.remote_peer());
    if (it != pool.end() && it->second.get() == &closed) {
      // Another open connection to the same peer takes over the pool slot.
      std::shared_ptr<RpcConnection> replacement;
      for (auto& [ptr, connection] : all) {
        if (ptr != &closed && connection->is_open() &&
            connection->remote_peer() == closed.remote_peer()) {
          replacement = connection;
          break;
        }
      }
      if (replacement) {
        it->second = std::move(replacement);
      } else {
        pool.erase(it);
      }
    }
    all.erase(&closed);
  }

  void on_accept(ConnectionPtr connection) {
    if (stopped) {
      connection->close();
      return;
    }
    adopt(std::move(connection), /*dialer=*/false);
  }

  asio::awaitable<std::shared_ptr<RpcConnection>> connection_to(const PeerAddress& to,
                                                                Deadline deadline) {
    auto self = shared_from_this();
    for (;;) {
      if (stopped) throw Error(Errc::cancelled, "rpc node stopped");
      if (auto it = pool.find(to.peer); it != pool.end() && it->second->is_open()) {
        co_return it->second;
      }
      auto& dial = dials[to.peer];
      if (!dial) {
        dial = std::make_shared<Dial>();
        asio::co_spawn(executor, run_dial(to, dial), asio::detached);
      }
      auto state = dial;
      Event event(executor);
      state->waiters.push_back(&event);
      struct Unwait {
        Dial& dial;
        Event* event;
        ~Unwait() { std::erase(dial.waiters, event); }
      } unwait{*state, &event};
      if (!co_await event.wait_until(deadline)) {
        throw Error(Errc::deadline_exceeded,
                    "connect to " + to.to_string() + ": deadline exceeded");
      }
      if (state->error) throw *state->error;
      if (state->result && state->result->is_open()) co_return state->result;
      // The new connection dropped already: dial again.
    }
  }

  asio::awaitable<void> run_dial(PeerAddress to, std::shared_ptr<Dial> state) {
    auto self = shared_from_this();
    try {
      auto connection = co_await connect_with_deadline(
          *transport, to, detail::deadline_after(options.connect_timeout), options.connect_timeout);
      if (connection->remote_peer() != to.peer) {
        connection->close();
        throw Error(Errc::permission_denied, "connect to " + to.to_string() +
                                                 ": peer presented id " +
                                                 connection->remote_peer().to_string());
      }
      if (stopped) {
        connection->close();
        throw Error(Errc::cancelled, "rpc node stopped");
      }
      state->result = adopt(std::move(connection), /*dialer=*/true);
    } catch (...) {
      try {
        rethrow_as_error(std::current_exception(), "connect to " + to.to_string());
      } catch (const Error& e) {
        state->error = e;
      }
    }
    if (auto it = dials.find(to.peer); it != dials.end() && it->second == state) dials.erase(it);
    for (Event* waiter : state->waiters) waiter->notify();
  }

  void start_sweeper() {
    if (sweeping || stopped || options.idle_timeout.count() <= 0) return;
    sweeping = true;
    asio::co_spawn(executor, sweep(), asio::detached);
  }

  // Closes pooled connections that carried nothing for idle_timeout.
  asio::awaitable<void> sweep() {
    auto self = shared_from_this();
    const auto period = std::max<std::chrono::milliseconds>(options.idle_timeout / 2,
                                                            std::chrono::milliseconds{10});
    while (!stopped && !all.empty()) {
      sweeper.expires_after(period);
      std::error_code ec;
      co_await sweeper.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      if (stopped) break;
      const auto now = SteadyClock::now();
      std::vector<std::shared_ptr<RpcConnection>> idle;
      for (auto& [ptr, connection] : all) {
        if (connection->is_idle(now, options.idle_timeout)) idle.push_back(connection);
      }
      for (auto& connection : idle) connection->close(Errc::connection_closed, "idle");
    }
    sweeping = false;
  }

  void stop() noexcept {
    if (stopped) return;
    stopped = true;
    sweeper.cancel();
    std::vector<std::shared_ptr<RpcConnection>> open;
    for (auto& [ptr, connection] : all) open.push_back(connection);
    for (auto& connection : open) connection->close(Errc::cancelled, "rpc node stopped");
    all.clear();
    pool.clear();
    for (auto& [peer, dial] : dials) {
      dial->error = Error(Errc::cancelled, "rpc node stopped");
      for (Event* waiter : dial->waiters) waiter->notify();
    }
    dials.clear();
    transport->close();
  }
};

RpcNode::RpcNode(TransportPtr transport, RpcOptions options)
    : impl_(std::make_shared<Impl>(std::move(transport), options)) {
  add_method("ping", [](const RequestContext&, Bytes payload) -> asio::awaitable<Bytes> {
    co_return payload;
  });
}

RpcNode::~RpcNode() {
  impl_->stop();
}

void RpcNode::add_method(std::string name, UnaryHandler handler) {
  impl_->handlers->unary[std::move(name)] = std::move(handler);
}

void RpcNode::add_stream_method(std::string name, StreamHandler handler) {
  impl_->handlers->streams[std::move(name)] = std::move(handler);
}

void RpcNode::start() {
  std::weak_ptr<Impl> weak = impl_;
  impl_->transport->listen([weak](ConnectionPtr connection) {
    if (auto impl = weak.lock()) {
      impl->on_accept(std::move(connection));
    } else {
      connection->close();
    }
  });
}

void RpcNode::stop() {
  impl_->stop();
}

PeerAddress RpcNode::local_address() const {
  return impl_->transport->local_address();
}
const PeerId& RpcNode::peer_id() const {
  return impl_->own_id;
}
asio::any_io_executor RpcNode::get_executor() const {
  return impl_->executor;
}
Transport& RpcNode::transport() noexcept {
  return *impl_->transport;
}

std::size_t RpcNode::connection_count() const noexcept {
  return impl_->all.size();
}

asio::awaitable<void> RpcNode::connect(const PeerAddress& to, CallOptions options) {
  auto impl = impl_;
  std::exception_ptr failure;
  try {
    co_await impl->connection_to(to, detail::deadline_after(options.timeout));
  } catch (...) {
    failure = std::current_exception();
  }
  if (failure) rethrow_as_error(failure, "connect to " + to.to_string());
}

asio::awaitable<Bytes> RpcNode::call(const PeerAddress& to, std::string_view method, Bytes request,
                                     CallOptions options) {
  auto impl = impl_;
  auto& instruments = detail::rpc_metrics();
  instruments.calls.inc();
  const auto started = SteadyClock::now();
  const auto deadline = detail::deadline_after(options.timeout);
  const std::string method_name(method);  // the caller's view may not outlive a suspension
  std::exception_ptr failure;
  try {
    auto connection = co_await impl->connection_to(to, deadline);
    Bytes reply = co_await connection->call(method_name, std::move(request), deadline);
    instruments.latency.observe(
        std::chrono::duration<double>(SteadyClock::now() - started).count());
    co_return reply;
  } catch (...) {
    failure = std::current_exception();
  }
  instruments.errors.inc();
  rethrow_as_error(failure, "rpc " + method_name);
}

asio::awaitable<StreamPtr> RpcNode::open_stream(const PeerAddress& to, std::string_view method,
                                                CallOptions options) {
  auto impl = impl_;
  const auto deadline = detail::deadline_after(options.timeout);
  const std::string method_name(method);
  std::exception_ptr failure;
  try {
    auto connection = co_await impl->connection_to(to, deadline);
    co_return co_await connection->open_stream(method_name, deadline);
  } catch (...) {
    failure = std::current_exception();
  }
  rethrow_as_error(failure, "open stream " + method_name);
}

asio::awaitable<void> Stream::write_framed(Bytes frame) {
  if (frame.size() < kStreamHeadroom)
    throw Error(Errc::invalid_argument, "write_framed: frame shorter than its headroom");
  frame.erase(frame.begin(), frame.begin() + kStreamHeadroom);
  co_await write(std::move(frame));
}

asio::awaitable<std::optional<StreamMessage>> Stream::read_message(
    std::chrono::milliseconds timeout) {
  auto message = co_await read(timeout);
  if (!message) co_return std::nullopt;
  co_return StreamMessage{std::move(*message), 0};
}

}  // namespace apiary::rpc
