// Link emulator: every wrapped connection models this peer's access link.
//
// Each direction (outgoing and incoming) has its own token bucket: a message of
// n bytes occupies the link for n / bandwidth seconds and queues behind the
// messages before it; it is then delivered after the one-way latency plus a
// uniform jitter, never before an earlier message (order is preserved).
// Outgoing: send() completes once the message has left the link (backpressure,
// so the sender's memory stays bounded by bandwidth × latency); a pump hands
// messages to the inner connection at their delivery time. Incoming: a pump
// reads the inner connection at once and receive() releases each message at
// its delivery time. Two emulated peers talking cross both links, so their
// latencies add up and the slower bandwidth wins. Random disconnects: each
// connection closes after an exponential time with rate disconnect_per_s.
// Determinism: connection i draws its jitter and disconnect times from a
// generator seeded by (profile.seed, i).
#include "net/link_emulator.hpp"

#include "core/async.hpp"

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/steady_timer.hpp>

#include <cmath>
#include <deque>
#include <random>

namespace apiary {

namespace {

using Clock = std::chrono::steady_clock;

std::uint64_t mix_seed(std::uint64_t x) {
  // splitmix64 finalizer: decorrelates consecutive seeds.
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// One direction of the link: serialization (bandwidth) then propagation (latency + jitter).
class LinkDirection {
 public:
  LinkDirection(const LinkProfile& profile, std::mt19937_64& rng) : profile_(profile), rng_(rng) {}

  struct Timing {
    Clock::time_point transmitted;  // the last byte has left the link
    Clock::time_point delivered;    // the message reaches the other side
  };

  Timing schedule(std::size_t size) {
    const auto now = Clock::now();
    auto start = std::max(now, free_at_);
    auto transmitted = start;
    if (profile_.bandwidth_bytes_per_s > 0) {
      transmitted += std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(
          static_cast<double>(size) / profile_.bandwidth_bytes_per_s));
    }
    free_at_ = transmitted;
    auto delay = std::chrono::duration_cast<Clock::duration>(profile_.latency);
    if (profile_.jitter.count() > 0) {
      std::uniform_int_distribution<std::int64_t> jitter(0, profile_.jitter.count());
      delay += std::chrono::duration_cast<Clock::duration>(std::chrono::microseconds{jitter(rng_)});
    }
    last_delivery_ = std::max(last_delivery_, transmitted + delay);
    return {transmitted, last_delivery_};
  }

 private:
  const LinkProfile& profile_;
  std::mt19937_64& rng_;
  Clock::time_point free_at_{};
  Clock::time_point last_delivery_{};
};

class ShapedConnection final : public Connection,
                               public std::enable_shared_from_this<ShapedConnection> {
 public:
  ShapedConnection(asio::any_io_executor executor, ConnectionPtr inner, LinkProfile profile,
                   std::uint64_t seed)
      : executor_(std::move(executor)),
        inner_(std::move(inner)),
        profile_(profile),
        rng_(seed),
        up_(profile_, rng_),
        down_(profile_, rng_),
        readable_(executor_),
        outbox_ready_(executor_),
        disconnect_timer_(executor_) {}

  ~ShapedConnection() override { inner_->close(); }

  void start() {
    asio::co_spawn(executor_, pump_in(weak_from_this(), inner_), asio::detached);
    if (profile_.disconnect_per_s > 0) {
      std::exponential_distribution<double> lifetime(profile_.disconnect_per_s);
      disconnect_timer_.expires_after(std::chrono::duration_cast<Clock::duration>(
          std::chrono::duration<double>(lifetime(rng_))));
      disconnect_timer_.async_wait([weak = weak_from_this()](std::error_code ec) {
        if (ec) return;
        if (auto self = weak.lock()) self->close();
      });
    }
  }

  const PeerId& remote_peer() const noexcept override { return inner_->remote_peer(); }
  const PublicKey& remote_key() const noexcept override { return inner_->remote_key(); }
  std::string remote_network() const override { return inner_->remote_network(); }
  ByteSpan remote_token() const noexcept override { return inner_->remote_token(); }
  std::optional<PeerAddress> remote_listen_address() const override {
    return inner_->remote_listen_address();
  }

  asio::awaitable<void> send(Bytes message) override {
    if (!open_) throw Error(Errc::connection_closed, "emulated link closed");
    const auto timing = up_.schedule(message.size());
    outbox_.push_back({timing.delivered, std::move(message)});
    if (!pumping_out_) {
      pumping_out_ = true;
      asio::co_spawn(executor_, pump_out(shared_from_this()), asio::detached);
    }
    if (timing.transmitted > Clock::now()) {
      asio::steady_timer wire(executor_, timing.transmitted);
      co_await wire.async_wait(asio::use_awaitable);
    }
    if (!open_) throw Error(Errc::connection_closed, "emulated link closed");
  }

  asio::awaitable<Bytes> receive() override {
    auto self = shared_from_this();
    for (;;) {
      if (!open_) throw Error(Errc::connection_closed, "emulated link closed");
      if (!inbox_.empty()) {
        if (inbox_.front().deliver_at <= Clock::now()) {
          Bytes message = std::move(inbox_.front().message);
          inbox_.pop_front();
          co_return message;
        }
        co_await readable_.wait_until(inbox_.front().deliver_at);
        continue;
      }
      if (inner_closed_) {
        close();
        throw Error(Errc::connection_closed, "emulated link closed by peer");
      }
      co_await readable_.wait();
    }
  }

  void close() noexcept override {
    if (!open_) return;
    open_ = false;
    disconnect_timer_.cancel();
    inner_->close();
    inbox_.clear();
    outbox_.clear();
    readable_.notify();
    outbox_ready_.notify();
  }

  bool is_open() const noexcept override { return open_ && inner_->is_open(); }

 private:
  struct Timed {
    Clock::time_point deliver_at;
    Bytes message;
  };

  // Reads the inner connection eagerly so arrival times are taken when bytes arrive.
  static asio::awaitable<void> pump_in(std::weak_ptr<ShapedConnection> weak, ConnectionPtr inner) {
    for (;;) {
      Bytes message;
      try {
        message = co_await inner->receive();
      } catch (...) {
        if (auto self = weak.lock()) {
          self->inner_closed_ = true;
          self->readable_.notify();
        }
        co_return;
      }
      auto self = weak.lock();
      if (!self || !self->open_) co_return;
      const auto timing = self->down_.schedule(message.size());
      self->inbox_.push_back({timing.delivered, std::move(message)});
      self->readable_.notify();
    }
  }

  // Runs while the outbox is non-empty; hands messages on at their delivery time.
  static asio::awaitable<void> pump_out(std::shared_ptr<ShapedConnection> self) {
    try {
      while (self->open_ && !self->outbox_.empty()) {
        const auto due = self->outbox_.front().deliver_at;
        if (due > Clock::now()) {
          co_await self->outbox_ready_.wait_until(due);
          continue;
        }
        Bytes message = std::move(self->outbox_.front().message);
        self->outbox_.pop_front();
        co_await self->inner_->send(std::move(message));
      }
    } catch (...) {
      self->close();
    }
    self->pumping_out_ = false;
  }

  asio::any_io_executor executor_;
  ConnectionPtr inner_;
  LinkProfile profile_;
  std::mt19937_64 rng_;
  LinkDirection up_;
  LinkDirection down_;
  std::deque<Timed> inbox_;
  std::deque<Timed> outbox_;
  async::Event readable_;
  async::Event outbox_ready_;
  asio::steady_timer disconnect_timer_;
  bool open_ = true;
  bool inner_closed_ = false;
  bool pumping_out_ = false;
};

class LinkEmulator final : public Transport, public std::enable_shared_from_this<LinkEmulator> {
 public:
  LinkEmulator(TransportPtr inner, LinkProfile profile)
      : inner_(std::move(inner)), profile_(profile) {}

  asio::any_io_executor get_executor() override { return inner_->get_executor(); }

  asio::awaitable<ConnectionPtr> connect(const PeerAddress& address) override {
    auto connection = co_await inner_->connect(address);
    co_return wrap(std::move(connection));
  }

  void listen(std::function<void(ConnectionPtr)> on_accept) override {
    std::weak_ptr<LinkEmulator> weak = weak_from_this();
    inner_->listen([weak, on_accept = std::move(on_accept)](ConnectionPtr connection) {
      auto self = weak.lock();
      if (!self) {
        connection->close();
        return;
      }
      on_accept(self->wrap(std::move(connection)));
    });
  }

  PeerAddress local_address() const override { return inner_->local_address(); }
  void close() noexcept override { inner_->close(); }
  // Closing the inner connection ends its shaped wrapper (its pump sees the close).
  std::size_t close_if(const std::function<bool(const Connection&)>& condition) override {
    return inner_->close_if(condition);
  }

 private:
  ConnectionPtr wrap(ConnectionPtr connection) {
    auto shaped =
        std::make_shared<ShapedConnection>(inner_->get_executor(), std::move(connection), profile_,
                                           mix_seed(profile_.seed + counter_++));
    shaped->start();
    return shaped;
  }

  TransportPtr inner_;
  LinkProfile profile_;
  std::uint64_t counter_ = 0;
};

}  // namespace

TransportPtr make_link_emulator(TransportPtr inner, LinkProfile profile) {
  return std::make_shared<LinkEmulator>(std::move(inner), profile);
}

}  // namespace apiary
