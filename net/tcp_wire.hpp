#pragma once
// Socket helpers of the TCP transport, shared with tests that play a raw peer:
// the handshake driven over a socket (deadline races: core/async.hpp).
// Errors: throws apiary::Error (handshake failures keep their code; socket
// failures become Errc::unavailable) and asio::system_error is never leaked.
#include "core/error.hpp"
#include "net/handshake.hpp"

#include <asio/awaitable.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/read.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>

#include <exception>
#include <string>

namespace apiary::tcp_wire {

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
