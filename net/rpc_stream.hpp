#pragma once
// A stream over an RpcConnection (internal to net/rpc*), with credit-based flow
// control: the receiver grants the sender credit (bytes) as its application
// reads, so at most `window` unread bytes are ever buffered per direction.
// The initial grant equals the receiver's RpcOptions::stream_window_bytes; a
// sender that exceeds its credit has its stream reset (resource_exhausted).
// write() is for one coroutine at a time; it returns once the frame is queued
// on the connection (credit bounds what is queued), so sealing the next frame
// overlaps with writing the previous one. Errors: throws apiary::Error.
#include "core/async.hpp"
#include "net/rpc.hpp"
#include "net/rpc_connection.hpp"

#include <cstdint>
#include <deque>
#include <memory>
#include <optional>

namespace apiary::rpc::detail {

class StreamImpl final : public Stream, public std::enable_shared_from_this<StreamImpl> {
 public:
  StreamImpl(std::shared_ptr<RpcConnection> connection, std::uint64_t id);
  ~StreamImpl() override;

  const PeerId& peer() const noexcept override { return connection_->remote_peer(); }
  asio::awaitable<void> write(Bytes message) override;
  asio::awaitable<std::optional<Bytes>> read(std::chrono::milliseconds timeout) override;
  asio::awaitable<void> write_framed(Bytes frame) override;
  asio::awaitable<std::optional<StreamMessage>> read_message(
      std::chrono::milliseconds timeout) override;
  asio::awaitable<void> close_write() override;
  void cancel() noexcept override;

  // Frame input from the connection.
  // `frame` holds the data from `offset` on (the frame's own header before it).
  void on_data(Bytes frame, std::size_t offset);
  void on_credit(std::uint64_t bytes);
  void on_close();
  void on_reset(Errc code, std::string_view message);
  // The connection dropped (or the open was refused): fail waiters.
  void fail(Errc code, std::string_view message);

  // Grants the peer the initial window (sent right after open/accept).
  void grant_initial_window();

 private:
  void grant(std::uint64_t bytes);
  // Waits until `size` bytes of credit are available and takes them.
  asio::awaitable<void> acquire_credit(std::size_t size);
  // Queues a frame of this stream; frames go out in call order.
  void send_ordered(Bytes frame);
  void forget_if_finished() noexcept;
  bool finished() const noexcept { return reset_.has_value() || (write_closed_ && peer_closed_); }

  std::shared_ptr<RpcConnection> connection_;
  std::uint64_t id_;
  std::uint64_t window_;

  // Receive side.
  std::deque<StreamMessage> inbox_;
  std::uint64_t granted_total_ = 0;   // credit given to the peer so far
  std::uint64_t received_total_ = 0;  // bytes the peer sent so far
  std::uint64_t consumed_unacked_ = 0;
  bool peer_closed_ = false;
  Event readable_;

  // Send side.
  std::uint64_t credit_ = 0;
  std::optional<std::uint64_t> peer_window_;
  bool write_closed_ = false;
  bool writing_ = false;
  std::size_t in_flight_ = 0;  // queued frames not yet handed to the transport
  Event writable_;
  Event drained_;

  std::optional<Error> reset_;
};

}  // namespace apiary::rpc::detail
