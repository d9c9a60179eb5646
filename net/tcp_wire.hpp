#pragma once
// Socket helpers of the TCP transport, shared with tests that play a raw peer:
// a deadline race for any awaitable, and the handshake driven over a socket.
// Errors: throws apiary::Error (handshake failures keep their code; socket
// failures become Errc::unavailable) and asio::system_error is never leaked.
#include "core/error.hpp"
#include "net/handshake.hpp"

#include <asio/awaitable.hpp>
#include <asio/co_spawn.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/experimental/deferred.hpp>
#include <asio/experimental/parallel_group.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/read.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>

#include <chrono>
#include <exception>
#include <optional>
#include <string>

namespace apiary::tcp_wire {

// Runs `op` against a timer; nullopt when the timer wins (op is then cancelled
// through its cancellation slot and awaited). Unlike awaitable_operators' ||,
// an exception from `op` is rethrown at once instead of waiting for the timer.
template <typename T>
asio::awaitable<std::optional<T>> race_deadline(asio::awaitable<T> op,
                                                std::chrono::steady_clock::duration timeout) {
  auto executor = co_await asio::this_coro::executor;
  asio::steady_timer timer(executor, timeout);
  auto [order, op_error, op_result, timer_error] =
      co_await asio::experimental::make_parallel_group(
          asio::co_spawn(executor, std::move(op), asio::experimental::deferred),
          timer.async_wait(asio::experimental::deferred))
          .async_wait(asio::experimental::wait_for_one(), asio::use_awaitable);
  (void)timer_error;
  if (order[0] == 1) co_return std::nullopt;
  if (op_error) std::rethrow_exception(op_error);
  co_return std::optional<T>(std::move(op_result));
}

// Exchanges handshake messages over `socket` until `handshake` is done. After
// a protocol failure it sends the verdict the handshake queued (best effort)
// and rethrows. `peer` names the other side in error messages.
inline asio::awaitable<void> run_handshake(asio::ip::tcp::socket& socket, Handshake& handshake,
                                           std::string peer) {
  using asio::experimental::as_tuple;
  for (;;) {
    if (auto out = handshake.take_outgoing()) {
      auto [ec, n] =
          co_await asio::async_write(socket, asio::buffer(*out), as_tuple(asio::use_awaitable));
      if (ec) throw Error(Errc::unavailable, "handshake with " + peer + " failed: " + ec.message());
    }
    if (handshake.done()) co_return;
    std::array<std::uint8_t, 2> prefix;
    auto [ec, n] =
        co_await asio::async_read(socket, asio::buffer(prefix), as_tuple(asio::use_awaitable));
    if (ec) throw Error(Errc::unavailable, "handshake with " + peer + " failed: " + ec.message());
    Bytes body(Handshake::message_length(prefix));
    std::tie(ec, n) =
        co_await asio::async_read(socket, asio::buffer(body), as_tuple(asio::use_awaitable));
    if (ec) throw Error(Errc::unavailable, "handshake with " + peer + " failed: " + ec.message());
    std::exception_ptr failure;
    try {
      handshake.on_message(body);
    } catch (...) {
      failure = std::current_exception();
    }
    if (failure) {
      if (auto verdict = handshake.take_outgoing())
        co_await asio::async_write(socket, asio::buffer(*verdict), as_tuple(asio::use_awaitable));
      std::rethrow_exception(failure);
    }
  }
}

// "1.2.3.4:5" / "[::1]:5" for logs; never throws.
inline std::string endpoint_text(const asio::ip::tcp::endpoint& endpoint) {
  auto address = endpoint.address();
  if (address.is_v6() && address.to_v6().is_v4_mapped())
    address = asio::ip::make_address_v4(asio::ip::v4_mapped, address.to_v6());
  std::string host = address.to_string();
  if (address.is_v6()) host = "[" + host + "]";
  return host + ":" + std::to_string(endpoint.port());
}

}  // namespace apiary::tcp_wire
