#include "net/rpc_stream.hpp"

#include "net/rpc_frame.hpp"

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>

#include <string>

namespace apiary::rpc::detail {

StreamImpl::StreamImpl(std::shared_ptr<RpcConnection> connection, std::uint64_t id)
    : connection_(std::move(connection)),
      id_(id),
      window_(std::max<std::uint64_t>(connection_->options().stream_window_bytes, 1)),
      readable_(connection_->executor()),
      writable_(connection_->executor()),
      drained_(connection_->executor()) {}

StreamImpl::~StreamImpl() {
  // Dropped before both sides finished: tell the peer to stop.
  if (!finished() && connection_->is_open()) {
    connection_->send_detached(encode_stream_reset(id_, Errc::cancelled, "stream abandoned"));
  }
  connection_->forget_stream(id_);
}

void StreamImpl::grant_initial_window() {
  grant(window_);
}

void StreamImpl::grant(std::uint64_t bytes) {
  if (bytes == 0 || reset_ || !connection_->is_open()) return;
  granted_total_ += bytes;
  connection_->send_detached(encode_stream_credit(id_, bytes));
}

asio::awaitable<void> StreamImpl::acquire_credit(std::size_t size) {
  if (reset_) throw *reset_;
  if (write_closed_) throw Error(Errc::failed_precondition, "stream write after close_write");
  if (writing_) throw Error(Errc::failed_precondition, "concurrent stream writes");
  if (peer_window_ && size > *peer_window_) {
    throw Error(Errc::invalid_argument, "stream message of " + std::to_string(size) +
                                            " bytes exceeds the peer's window of " +
                                            std::to_string(*peer_window_));
  }
  writing_ = true;
  struct Reset {
    bool& flag;
    ~Reset() { flag = false; }
  } reset_writing{writing_};
  const auto deadline = deadline_after(connection_->options().idle_timeout);
  while (credit_ < size) {
    if (reset_) throw *reset_;
    if (!co_await writable_.wait_until(deadline)) {
      throw Error(Errc::deadline_exceeded, "stream peer granted no window in time");
    }
    if (peer_window_ && size > *peer_window_) {
      throw Error(Errc::invalid_argument, "stream message exceeds the peer's window");
    }
  }
  if (reset_) throw *reset_;
  credit_ -= size;
}

asio::awaitable<void> StreamImpl::write(Bytes message) {
  co_await acquire_credit(message.size());
  send_ordered(encode_stream_data(id_, message));
}

asio::awaitable<void> StreamImpl::write_framed(Bytes frame) {
  if (frame.size() < stream_data_header_size)
    throw Error(Errc::invalid_argument, "write_framed: frame shorter than its headroom");
  const std::size_t size = frame.size() - stream_data_header_size;
  co_await acquire_credit(size);
  write_stream_data_header(
      id_, size, std::span<std::uint8_t, stream_data_header_size>(frame.data(), frame.size()));
  send_ordered(std::move(frame));
}

void StreamImpl::send_ordered(Bytes frame) {
  ++in_flight_;
  asio::co_spawn(
      connection_->executor(),
      [self = shared_from_this(), frame = std::move(frame)]() mutable -> asio::awaitable<void> {
        std::optional<Error> failure;
        try {
          co_await self->connection_->send(std::move(frame));
        } catch (const Error& e) {
          failure = e;
        } catch (const std::exception& e) {
          failure = Error(Errc::connection_closed, e.what());
        }
        if (failure && !self->reset_) {
          const std::string why = std::string("stream send failed: ") + failure->what();
          if (self->connection_->is_open()) {
            self->connection_->send_detached(encode_stream_reset(self->id_, failure->code(), why));
          }
          self->fail(failure->code(), why);
          self->connection_->forget_stream(self->id_);
        }
        if (--self->in_flight_ == 0) self->drained_.notify();
      },
      asio::detached);
}

asio::awaitable<std::optional<Bytes>> StreamImpl::read(std::chrono::milliseconds timeout) {
  auto message = co_await read_message(timeout);
  if (!message) co_return std::nullopt;
  Bytes bytes = std::move(message->storage);
  if (message->offset > 0)
    bytes.erase(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(message->offset));
  co_return bytes;
}

asio::awaitable<std::optional<StreamMessage>> StreamImpl::read_message(
    std::chrono::milliseconds timeout) {
  const auto deadline = deadline_after(timeout);
  for (;;) {
    if (!inbox_.empty()) {
      StreamMessage message = std::move(inbox_.front());
      inbox_.pop_front();
      consumed_unacked_ += message.size();
      if (consumed_unacked_ >= window_ / 4) {
        grant(consumed_unacked_);
        consumed_unacked_ = 0;
      }
      co_return message;
    }
    if (peer_closed_) co_return std::nullopt;
    if (reset_) throw *reset_;
    // About to wait: return all consumed credit so a blocked sender can go on.
    if (consumed_unacked_ > 0) {
      grant(consumed_unacked_);
      consumed_unacked_ = 0;
    }
    if (!co_await readable_.wait_until(deadline)) {
      throw Error(Errc::deadline_exceeded,
                  "stream read: nothing within " + std::to_string(timeout.count()) + " ms");
    }
  }
}

asio::awaitable<void> StreamImpl::close_write() {
  if (write_closed_) co_return;
  if (reset_) throw *reset_;
  write_closed_ = true;
  send_ordered(encode_stream_close(id_));
  // Completes once every frame of this stream has been handed to the transport.
  const auto deadline = deadline_after(connection_->options().idle_timeout);
  while (in_flight_ > 0) {
    if (!co_await drained_.wait_until(deadline)) {
      throw Error(Errc::deadline_exceeded, "stream close: frames not sent in time");
    }
  }
  if (reset_ && !peer_closed_) throw *reset_;
  forget_if_finished();
}

void StreamImpl::cancel() noexcept {
  if (finished()) return;
  reset_ = Error(Errc::cancelled, "stream cancelled");
  inbox_.clear();
  if (connection_->is_open()) {
    connection_->send_detached(
        encode_stream_reset(id_, Errc::cancelled, "stream cancelled by peer"));
  }
  readable_.notify();
  writable_.notify();
  connection_->forget_stream(id_);
}

void StreamImpl::on_data(Bytes frame, std::size_t offset) {
  if (reset_) return;
  StreamMessage data{std::move(frame), offset};
  received_total_ += data.size();
  if (received_total_ > granted_total_ || peer_closed_) {
    const std::string why =
        peer_closed_ ? "stream data after close" : "peer exceeded stream window";
    reset_ = Error(peer_closed_ ? Errc::bad_message : Errc::resource_exhausted, why);
    inbox_.clear();
    connection_->send_detached(encode_stream_reset(id_, reset_->code(), why));
    readable_.notify();
    writable_.notify();
    connection_->forget_stream(id_);
    return;
  }
  inbox_.push_back(std::move(data));
  readable_.notify();
}

void StreamImpl::on_credit(std::uint64_t bytes) {
  if (!peer_window_) peer_window_ = bytes;
  credit_ += bytes;
  writable_.notify();
}

void StreamImpl::on_close() {
  peer_closed_ = true;
  readable_.notify();
  forget_if_finished();
}

void StreamImpl::on_reset(Errc code, std::string_view message) {
  if (reset_) return;
  reset_ = Error(code, "stream reset by peer: " + std::string(message));
  // Data the peer finished sending stays readable; otherwise it is discarded.
  if (!peer_closed_) inbox_.clear();
  readable_.notify();
  writable_.notify();
  connection_->forget_stream(id_);
}

void StreamImpl::fail(Errc code, std::string_view message) {
  if (reset_) return;
  reset_ = Error(code, std::string(message));
  if (!peer_closed_) inbox_.clear();
  readable_.notify();
  writable_.notify();
}

void StreamImpl::forget_if_finished() noexcept {
  if (finished()) connection_->forget_stream(id_);
}

}  // namespace apiary::rpc::detail
