#pragma once
// One authenticated TCP connection after the handshake: AEAD frames
// (net/frame_cipher.hpp) over an asio socket. Internal to the TCP transport
// (net/tcp_transport.cpp); see net/transport.hpp for the Connection contract.
//
// Sends are sealed in call order and written by one writer (several queued
// frames go out in one gathered write). A send that has started writing is
// not cancellable (the frame must go out whole); a queued send may be
// cancelled, which ends the wait but still sends the frame. A receive
// cancelled before a byte of the next frame arrived leaves the connection
// usable; cancelled mid-frame, it closes it. Any authentication failure,
// oversize frame or socket error closes this connection only (logged with the
// remote endpoint) and fails pending calls with Errc::connection_closed.
//
// Memory follows what arrived, not what a header announced: a frame body is
// allocated whole only within the transport's body budget (net/body_budget.hpp);
// past it, it is read into a buffer that starts at 64 KiB and then grows to
// twice what was read or to what the socket holds. A body that is not all
// there at once must arrive within the options' frame_body_timeout plus size /
// frame_body_min_rate after its header, or the connection is closed.
#include "core/error.hpp"
#include "net/body_budget.hpp"
#include "net/frame_cipher.hpp"
#include "net/handshake.hpp"
#include "net/transport.hpp"

#include <asio/ip/tcp.hpp>
#include <asio/steady_timer.hpp>

#include <array>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>

namespace apiary {

class TcpConnection final : public Connection, public std::enable_shared_from_this<TcpConnection> {
 public:
  // `on_close` runs once, when the connection closes or is destroyed open.
  // `body_budget`: the transport's, for bodies allocated before they arrive
  // (none: every body grows with what arrived).
  TcpConnection(asio::ip::tcp::socket socket, const HandshakeResult& handshake,
                const TransportOptions& options, std::shared_ptr<BodyBudget> body_budget,
                std::optional<PeerAddress> remote_listen_address,
                std::function<void()> on_close = {});
  ~TcpConnection() override;

  const PeerId& remote_peer() const noexcept override { return remote_peer_; }
  const PublicKey& remote_key() const noexcept override { return remote_key_; }
  std::optional<PeerAddress> remote_listen_address() const override { return remote_listen_; }
  std::string remote_network() const override { return remote_network_; }
  ByteSpan remote_token() const noexcept override { return remote_token_; }
  asio::awaitable<void> send(Bytes message) override;
  asio::awaitable<Bytes> receive() override;
  void close() noexcept override;
  bool is_open() const noexcept override { return open_; }

  const std::string& remote_endpoint() const noexcept { return remote_endpoint_; }
  CipherSuite cipher() const noexcept { return cipher_; }

 private:
  struct PendingWrite {
    explicit PendingWrite(const asio::any_io_executor& executor) : wake(executor) {}
    // The frame on the wire is header ‖ message (encrypted in place) ‖ tag.
    std::array<std::uint8_t, frame_header_size> header{};
    Bytes message;
    std::array<std::uint8_t, frame_tag_size> tag{};
    asio::steady_timer wake;  // cancelled when the frame is written or failed
    bool done = false;
    bool failed = false;
  };

  asio::awaitable<void> drain_queue(std::shared_ptr<TcpConnection> self);
  // Reads the `body_size` bytes after a header, growing the buffer as they arrive.
  asio::awaitable<Bytes> read_body(std::size_t body_size);
  // Closes the connection unless the current frame's body arrives in time.
  void arm_body_deadline(std::size_t body_size);
  void fail_body_read(const asio::error_code& ec);
  void fail(const std::string& reason, bool warn) noexcept;
  Error closed_error() const;

  asio::ip::tcp::socket socket_;
  FrameSealer sealer_;
  FrameOpener opener_;
  CipherSuite cipher_;
  PublicKey remote_key_;
  PeerId remote_peer_;
  std::optional<PeerAddress> remote_listen_;
  std::string remote_endpoint_;
  std::string remote_network_;  // address_prefix() of the socket's remote address
  Bytes remote_token_;
  std::deque<std::shared_ptr<PendingWrite>> queue_;
  asio::steady_timer body_timer_;
  std::chrono::milliseconds body_timeout_;
  std::size_t body_min_rate_;
  std::shared_ptr<BodyBudget> body_budget_;
  std::uint64_t frames_started_ = 0;  // headers read; tells a stale body deadline apart
  std::function<void()> on_close_;
  bool open_ = true;
  bool writing_ = false;
  bool receiving_ = false;
  std::string close_reason_ = "connection closed";
};

}  // namespace apiary
