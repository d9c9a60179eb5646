#pragma once
// A peer that speaks the secure channel by hand (the real handshake, then any
// bytes it likes), and a silent socket from a chosen loopback source address:
// shared by the transport tests (tests/net) and the attack tests (tests/security).
#include "core/error.hpp"
#include "core/identity.hpp"
#include "net/frame_cipher.hpp"
#include "net/handshake.hpp"
#include "net/rpc_frame.hpp"
#include "net/tcp_wire.hpp"

#include <asio/this_coro.hpp>

#include <array>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace apiary::test {

using asio::awaitable;
using asio::use_awaitable;
using asio::ip::tcp;

// A peer that speaks the wire protocol by hand, so tests can send bad frames.
struct RawPeer {
  explicit RawPeer(asio::any_io_executor executor) : socket(std::move(executor)) {}
  Identity identity = Identity::generate();  // a fresh, free identity each time
  tcp::socket socket;
  std::optional<FrameSealer> sealer;
  std::optional<FrameOpener> opener;

  awaitable<void> connect(const PeerAddress& to) {
    co_await socket.async_connect(tcp::endpoint(asio::ip::make_address(to.host), to.port),
                                  use_awaitable);
    HandshakeConfig config;
    config.expected_peer = to.peer;
    Handshake handshake(Handshake::Role::initiator, identity, config);
    co_await tcp_wire::run_handshake(socket, handshake, to.to_string());
    sealer.emplace(handshake.result().cipher, handshake.result().send_key);
    opener.emplace(handshake.result().cipher, handshake.result().receive_key, 16u << 20);
  }
  awaitable<void> write(ByteSpan data) {
    co_await asio::async_write(socket, asio::buffer(data.data(), data.size()), use_awaitable);
  }
  // A frame header announcing a body of `body_bytes` (ciphertext and tag).
  static Bytes frame_header(std::uint32_t body_bytes) {
    return Bytes{static_cast<std::uint8_t>(body_bytes >> 24),
                 static_cast<std::uint8_t>(body_bytes >> 16),
                 static_cast<std::uint8_t>(body_bytes >> 8), static_cast<std::uint8_t>(body_bytes)};
  }
  // One RPC request (the sealed frame) and its reply; throws when the peer closed.
  awaitable<Bytes> call(std::uint64_t id, std::string_view method, ByteSpan payload) {
    co_await write(sealer->seal(rpc::detail::encode_request(id, method, payload)));
    std::array<std::uint8_t, frame_header_size> header;
    co_await asio::async_read(socket, asio::buffer(header), use_awaitable);
    Bytes body(opener->body_size(header));
    co_await asio::async_read(socket, asio::buffer(body), use_awaitable);
    body.resize(opener->open(header, body));
    co_return body;
  }
};

// A socket from `source` (any 127.x.y.z on Linux loopback) that connects and says nothing.
inline awaitable<std::shared_ptr<tcp::socket>> silent_socket(const PeerAddress& to,
                                                             const std::string& source) {
  auto socket = std::make_shared<tcp::socket>(co_await asio::this_coro::executor);
  socket->open(tcp::v4());
  socket->bind(tcp::endpoint(asio::ip::make_address(source), 0));
  co_await socket->async_connect(tcp::endpoint(asio::ip::make_address(to.host), to.port),
                                 use_awaitable);
  co_return socket;
}

}  // namespace apiary::test
