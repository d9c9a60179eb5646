#include "net/tcp_connection.hpp"

#include "net/admission.hpp"

#include "core/log.hpp"
#include "net/tcp_metrics.hpp"
#include "net/tcp_wire.hpp"

#include <asio/bind_cancellation_slot.hpp>
#include <asio/cancellation_signal.hpp>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>

#include <algorithm>
#include <utility>
#include <vector>

namespace apiary {

namespace {

using asio::experimental::as_tuple;

// A completion token that ignores the awaiting coroutine's cancellation: used
// for writes, which must put a frame on the wire whole or not at all.
auto uncancellable() {
  return asio::bind_cancellation_slot(asio::cancellation_slot(), as_tuple(asio::use_awaitable));
}

constexpr std::size_t max_batch_frames = 64;
constexpr std::size_t max_batch_bytes = 1u << 20;
// A frame body buffer starts this large; small frames are read in one piece.
constexpr std::size_t first_body_piece = 64u << 10;

}  // namespace

TcpConnection::TcpConnection(asio::ip::tcp::socket socket, const HandshakeResult& handshake,
                             const TransportOptions& options,
                             std::shared_ptr<BodyBudget> body_budget,
                             std::optional<PeerAddress> remote_listen_address,
                             std::function<void()> on_close)
    : socket_(std::move(socket)),
      sealer_(handshake.cipher, handshake.send_key),
      opener_(handshake.cipher, handshake.receive_key, options.max_message_size),
      cipher_(handshake.cipher),
      remote_key_(handshake.remote_key),
      remote_peer_(handshake.remote_peer),
      remote_listen_(std::move(remote_listen_address)),
      body_timer_(socket_.get_executor()),
      body_timeout_(options.frame_body_timeout),
      body_min_rate_(std::max<std::size_t>(options.frame_body_min_rate, 1)),
      body_budget_(std::move(body_budget)),
      on_close_(std::move(on_close)) {
  asio::error_code ec;
  auto endpoint = socket_.remote_endpoint(ec);
  remote_endpoint_ = ec ? std::string("?") : tcp_wire::endpoint_text(endpoint);
  remote_network_ = ec ? std::string("?") : address_prefix(endpoint.address());
  remote_token_ = handshake.remote_token;
  // Synchronous reads (read_body's first one) return at once instead of waiting.
  socket_.non_blocking(true, ec);
}

TcpConnection::~TcpConnection() {
  asio::error_code ec;
  socket_.close(ec);
  if (on_close_) on_close_();
}

Error TcpConnection::closed_error() const {
  return Error(Errc::connection_closed, "connection to " + remote_peer_.to_string() + " at " +
                                            remote_endpoint_ + " closed: " + close_reason_);
}

void TcpConnection::fail(const std::string& reason, bool warn) noexcept {
  if (!open_) return;
  if (warn) {
    log::warn("closing connection to peer {} at {}: {}", remote_peer_.to_string(), remote_endpoint_,
              reason);
  } else {
    log::debug("connection to peer {} at {} closed: {}", remote_peer_.to_string(), remote_endpoint_,
               reason);
  }
  close_reason_ = reason;
  close();
}

void TcpConnection::close() noexcept {
  if (!open_) return;
  open_ = false;
  asio::error_code ec;
  socket_.shutdown(asio::ip::tcp::socket::shutdown_both, ec);
  socket_.close(ec);
  body_timer_.cancel();
  if (on_close_) std::exchange(on_close_, nullptr)();
  for (auto& pending : queue_) {
    pending->done = true;
    pending->failed = true;
    pending->wake.cancel();
  }
  queue_.clear();
}

asio::awaitable<void> TcpConnection::send(Bytes message) {
  auto self = shared_from_this();
  if (!open_) throw closed_error();
  if (message.size() > opener_.max_message_size())
    throw Error(Errc::resource_exhausted,
                "message of " + std::to_string(message.size()) + " bytes exceeds the limit of " +
                    std::to_string(opener_.max_message_size()) + " bytes");
  if (!writing_) {
    // Fast path: nobody is writing, so this coroutine writes its own frame.
    std::array<std::uint8_t, frame_header_size> header;
    std::array<std::uint8_t, frame_tag_size> tag;
    sealer_.seal_in_place(message, header, tag);
    writing_ = true;
    const std::array<asio::const_buffer, 3> frame{asio::buffer(header), asio::buffer(message),
                                                  asio::buffer(tag)};
    auto [ec, n] = co_await asio::async_write(socket_, frame, uncancellable());
    tcp_metrics::counters().bytes_sent.inc(n);
    if (ec) {
      writing_ = false;
      fail("write failed: " + ec.message(), false);
      throw closed_error();
    }
    if (!queue_.empty() && open_) {
      asio::co_spawn(socket_.get_executor(), drain_queue(self), asio::detached);
    } else {
      writing_ = false;
    }
    co_return;
  }

  // Sealed now, so frames go out in call order whatever the wake-up order.
  auto pending = std::make_shared<PendingWrite>(socket_.get_executor());
  pending->message = std::move(message);
  sealer_.seal_in_place(pending->message, pending->header, pending->tag);
  pending->wake.expires_at(asio::steady_timer::time_point::max());
  queue_.push_back(pending);
  if (!pending->done) co_await pending->wake.async_wait(as_tuple(asio::use_awaitable));
  if (!pending->done) throw Error(Errc::cancelled, "send cancelled (the frame is still sent)");
  if (pending->failed) throw closed_error();
}

// Writes queued frames, several per gathered write, until the queue is empty.
asio::awaitable<void> TcpConnection::drain_queue(std::shared_ptr<TcpConnection> self) {
  (void)self;  // keeps this connection alive while the writer runs
  std::vector<std::shared_ptr<PendingWrite>> batch;
  std::vector<asio::const_buffer> buffers;
  while (open_ && !queue_.empty()) {
    batch.clear();
    buffers.clear();
    std::size_t bytes = 0;
    while (!queue_.empty() && batch.size() < max_batch_frames && bytes < max_batch_bytes) {
      const auto& front = *queue_.front();
      bytes += front.message.size() + frame_overhead;
      buffers.push_back(asio::buffer(front.header));
      buffers.push_back(asio::buffer(front.message));
      buffers.push_back(asio::buffer(front.tag));
      batch.push_back(std::move(queue_.front()));
      queue_.pop_front();
    }
    auto [ec, n] = co_await asio::async_write(socket_, buffers, uncancellable());
    tcp_metrics::counters().bytes_sent.inc(n);
    for (auto& pending : batch) {
      pending->done = true;
      pending->failed = static_cast<bool>(ec);
      pending->message = Bytes();
      pending->wake.cancel();
    }
    if (ec) {
      fail("write failed: " + ec.message(), false);
      break;
    }
  }
  writing_ = false;
}

asio::awaitable<Bytes> TcpConnection::receive() {
  auto self = shared_from_this();
  if (!open_) throw closed_error();
  if (receiving_)
    throw Error(Errc::failed_precondition,
                "TcpConnection::receive called while another is pending");
  receiving_ = true;
  struct Reset {
    bool& flag;
    ~Reset() { flag = false; }
  } reset{receiving_};

  std::array<std::uint8_t, frame_header_size> header;
  auto [ec, n] =
      co_await asio::async_read(socket_, asio::buffer(header), as_tuple(asio::use_awaitable));
  if (ec) {
    if (ec == asio::error::operation_aborted && open_) {
      if (n == 0) throw Error(Errc::cancelled, "receive cancelled");
      fail("receive cancelled in the middle of a frame", false);
    } else {
      fail(ec == asio::error::eof ? std::string("closed by peer") : "read failed: " + ec.message(),
           false);
    }
    throw closed_error();
  }
  std::size_t body_size = 0;
  try {
    body_size = opener_.body_size(header);  // checked before reading on
  } catch (const Error& e) {
    tcp_metrics::counters().frames_rejected.inc();
    fail(e.what(), true);
    throw closed_error();
  }
  Bytes body = co_await read_body(body_size);
  try {
    body.resize(opener_.open(header, body));
    tcp_metrics::counters().bytes_received.inc(frame_header_size + body_size);
  } catch (const Error& e) {
    tcp_metrics::counters().frames_rejected.inc();
    fail(e.what(), true);
    throw closed_error();
  }
  co_return body;
}

void TcpConnection::arm_body_deadline(std::size_t body_size) {
  const auto allowance =
      body_timeout_ + std::chrono::milliseconds(1000 * body_size / body_min_rate_);
  body_timer_.expires_after(allowance);
  std::weak_ptr<TcpConnection> weak = weak_from_this();
  body_timer_.async_wait([weak, frame = frames_started_, allowance](std::error_code ec) {
    auto self = weak.lock();
    // A timer that fired while the body completed must not close the next frame.
    if (ec || !self || self->frames_started_ != frame || !self->receiving_) return;
    tcp_metrics::counters().frames_rejected.inc();
    self->fail("frame body not received within " + std::to_string(allowance.count()) + " ms", true);
  });
}

void TcpConnection::fail_body_read(const asio::error_code& ec) {
  // After the body deadline fired the connection is closed already, with that reason.
  fail(ec == asio::error::operation_aborted
           ? std::string("receive cancelled in the middle of a frame")
       : ec == asio::error::eof ? std::string("closed by peer in the middle of a frame")
                                : "read failed: " + ec.message(),
       false);
}

asio::awaitable<Bytes> TcpConnection::read_body(std::size_t body_size) {
  ++frames_started_;
  // Within the transport's budget a large body is allocated whole and read in
  // place; past it, the buffer grows with what arrived (copying what it holds).
  const BodyReservation reservation =
      body_size > first_body_piece ? BodyReservation(body_budget_, body_size) : BodyReservation();
  Bytes body(reservation ? body_size : std::min(body_size, first_body_piece));
  // The common case costs what a plain read does, one recv and no timer: the
  // socket is non-blocking, so this takes what has arrived of the body (most
  // small frames arrive whole with their header) and never waits.
  asio::error_code ec;
  std::size_t received = socket_.read_some(asio::buffer(body), ec);
  if (ec == asio::error::would_block || ec == asio::error::try_again) {
    received = 0;
  } else if (ec) {
    fail_body_read(ec);
    throw closed_error();
  }
  if (received == body_size) co_return body;
  arm_body_deadline(body_size);
  while (received < body_size) {
    // Grow with what arrived: twice what was read, or what the socket holds already.
    if (received == body.size()) {
      const std::size_t waiting = socket_.available(ec);
      body.resize(std::min(
          body_size, std::max({first_body_piece, 2 * received, received + (ec ? 0 : waiting)})));
    }
    auto [read_ec, n] = co_await asio::async_read(
        socket_, asio::buffer(body.data() + received, body.size() - received),
        as_tuple(asio::use_awaitable));
    received += n;
    if (!read_ec) continue;
    body_timer_.cancel();
    fail_body_read(read_ec);
    throw closed_error();
  }
  body_timer_.cancel();
  co_return body;
}

}  // namespace apiary
