// The TCP transport over loopback: handshake, frames, refusals, and a listener
// that survives malformed, tampered, replayed, reordered and oversized input.
#include "core/error.hpp"
#include "core/metrics.hpp"
#include "net/body_budget.hpp"
#include "net/frame_cipher.hpp"
#include "net/handshake.hpp"
#include "net/tcp_transport.hpp"
#include "net/tcp_wire.hpp"
#include "tests/net/raw_peer.hpp"

#include <gtest/gtest.h>
#include <spdlog/spdlog.h>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/executor_work_guard.hpp>
#include <asio/experimental/awaitable_operators.hpp>
#include <asio/io_context.hpp>
#include <asio/use_future.hpp>

#include <algorithm>
#include <array>
#include <chrono>
#include <deque>
#include <future>
#include <random>
#include <string>
#include <thread>

using namespace apiary;
using namespace std::chrono_literals;
using asio::awaitable;
using asio::use_awaitable;
using asio::experimental::as_tuple;
using asio::ip::tcp;

namespace {

Bytes bytes_of(std::string_view s) {
  return Bytes(s.begin(), s.end());
}
std::string text_of(const Bytes& b) {
  return std::string(b.begin(), b.end());
}

// Accepted connections, awaitable with a deadline.
struct Inbox {
  explicit Inbox(asio::any_io_executor ex) : wake(ex) {}
  std::deque<ConnectionPtr> connections;
  asio::steady_timer wake;
  std::size_t total = 0;

  std::function<void(ConnectionPtr)> handler() {
    return [this](ConnectionPtr c) {
      connections.push_back(std::move(c));
      ++total;
      wake.cancel();
    };
  }
  awaitable<ConnectionPtr> next(std::chrono::milliseconds timeout = 5000ms) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (connections.empty()) {
      if (std::chrono::steady_clock::now() >= deadline)
        throw Error(Errc::deadline_exceeded, "no inbound connection");
      wake.expires_at(deadline);
      co_await wake.async_wait(as_tuple(use_awaitable));
    }
    auto c = connections.front();
    connections.pop_front();
    co_return c;
  }
};

using test::RawPeer;

Errc code_of_error(std::exception_ptr e, std::string* message = nullptr) {
  try {
    std::rethrow_exception(e);
  } catch (const Error& err) {
    if (message) *message = err.what();
    return err.code();
  } catch (...) {
    return Errc::internal;
  }
}

class TcpTransportTest : public ::testing::Test {
 protected:
  void SetUp() override {
    work_.emplace(io_.get_executor());
    thread_ = std::thread([this] { io_.run(); });
  }
  // Runs a coroutine on the network thread and waits for it (bounded).
  template <typename F>
  auto run(F&& make, std::chrono::seconds limit = 20s) {
    auto future = asio::co_spawn(io_, make(), asio::use_future);
    if (future.wait_for(limit) != std::future_status::ready)
      throw std::runtime_error("test coroutine did not finish in time");
    return future.get();
  }

  // Runs a coroutine expected to throw; returns the apiary error code.
  template <typename F>
  Errc run_expect_error(F&& make, std::string* message = nullptr) {
    try {
      run(std::forward<F>(make));
    } catch (const Error& e) {
      if (message) *message = e.what();
      return e.code();
    }
    return Errc::ok;
  }

  void TearDown() override {
    try {
      run([this]() -> awaitable<void> {
        for (auto& t : transports_) t->close();
        co_return;
      });
    } catch (...) {
    }
    work_.reset();
    io_.stop();
    thread_.join();
  }

  TransportPtr make(TransportOptions options = {}, std::string host = "127.0.0.1",
                    Identity identity = Identity::generate()) {
    auto t = run([&]() -> awaitable<TransportPtr> {
      co_return make_tcp_transport(io_.get_executor(), identity, TcpEndpoint{host, 0}, options);
    });
    transports_.push_back(t);
    return t;
  }
  void listen(const TransportPtr& t, Inbox& inbox) {
    run([&]() -> awaitable<void> {
      t->listen(inbox.handler());
      co_return;
    });
  }

  // Checks that `from` can still dial `to` and exchange a message both ways.
  void expect_working(const TransportPtr& from, const TransportPtr& to, Inbox& inbox) {
    run([&]() -> awaitable<void> {
      auto out = co_await from->connect(to->local_address());
      auto in = co_await inbox.next();
      co_await out->send(bytes_of("still here?"));
      EXPECT_EQ(text_of(co_await in->receive()), "still here?");
      co_await in->send(bytes_of("yes"));
      EXPECT_EQ(text_of(co_await out->receive()), "yes");
      out->close();
    });
  }

  asio::io_context io_;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work_;
  std::thread thread_;
  std::vector<TransportPtr> transports_;
};

}  // namespace

TEST_F(TcpTransportTest, HandshakeAndMessagesBothWays) {
  Identity ida = Identity::generate(), idb = Identity::generate();
  auto a = make({}, "127.0.0.1", ida);
  auto b = make({}, "127.0.0.1", idb);
  Inbox inbox(io_.get_executor());
  listen(a, inbox);
  EXPECT_EQ(a->local_address().peer, ida.peer_id());
  EXPECT_NE(a->local_address().port, 0);
  run([&]() -> awaitable<void> {
    auto out = co_await b->connect(a->local_address());
    auto in = co_await inbox.next();
    EXPECT_EQ(out->remote_peer(), ida.peer_id());
    EXPECT_EQ(out->remote_key(), ida.public_key());
    EXPECT_EQ(in->remote_peer(), idb.peer_id());
    EXPECT_EQ(in->remote_listen_address(), b->local_address());
    EXPECT_EQ(out->remote_listen_address(), a->local_address());
    co_await out->send(bytes_of("ping"));
    EXPECT_EQ(text_of(co_await in->receive()), "ping");
    co_await in->send(bytes_of("pong"));
    co_await in->send(Bytes{});
    EXPECT_EQ(text_of(co_await out->receive()), "pong");
    EXPECT_TRUE((co_await out->receive()).empty());
  });
}

TEST_F(TcpTransportTest, ClientModeAnnouncesNoListenAddress) {
  auto a = make();
  TransportOptions client;
  client.client_mode = true;
  auto b = make(client);
  EXPECT_EQ(b->local_address().port, 0);
  Inbox inbox(io_.get_executor());
  listen(a, inbox);
  run([&]() -> awaitable<void> {
    b->listen([](ConnectionPtr) {});  // no-op in client mode
    auto out = co_await b->connect(a->local_address());
    auto in = co_await inbox.next();
    EXPECT_FALSE(in->remote_listen_address().has_value());
    co_await out->send(bytes_of("from a client"));
    EXPECT_EQ(text_of(co_await in->receive()), "from a client");
  });
}

TEST_F(TcpTransportTest, ConcurrentSendsKeepOrderAndLargeMessagesArriveWhole) {
  TransportOptions options;
  options.max_message_size = 8u << 20;
  auto a = make(options);
  auto b = make(options);
  Inbox inbox(io_.get_executor());
  listen(a, inbox);
  run([&]() -> awaitable<void> {
    auto out = co_await b->connect(a->local_address());
    auto in = co_await inbox.next();
    constexpr int count = 300;
    Bytes big(6u << 20);
    for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<std::uint8_t>(i * 31 + 7);
    int sent = 0;
    for (int i = 0; i < count; ++i) {
      Bytes message = i == count / 2 ? big : bytes_of("m" + std::to_string(i));
      asio::co_spawn(
          io_.get_executor(),
          [&sent, out, message = std::move(message)]() mutable -> awaitable<void> {
            co_await out->send(std::move(message));
            ++sent;
          },
          asio::detached);
    }
    for (int i = 0; i < count; ++i) {
      Bytes got = co_await in->receive();
      if (i == count / 2) {
        EXPECT_EQ(got, big);
      } else {
        EXPECT_EQ(text_of(got), "m" + std::to_string(i));
      }
    }
    EXPECT_EQ(sent, count);
    bool refused = false;
    try {
      co_await out->send(Bytes(options.max_message_size + 1));
    } catch (const Error& e) {
      refused = e.code() == Errc::resource_exhausted;
    }
    EXPECT_TRUE(refused);
    co_await out->send(bytes_of("after"));  // the refused message did not break the stream
    EXPECT_EQ(text_of(co_await in->receive()), "after");
  });
}

TEST_F(TcpTransportTest, WrongPeerIdIsRefusedWithClearMessage) {
  Identity ida = Identity::generate();
  auto a = make({}, "127.0.0.1", ida);
  auto b = make();
  Inbox inbox(io_.get_executor());
  listen(a, inbox);
  PeerAddress wrong = a->local_address();
  wrong.peer = Identity::generate().peer_id();
  std::string message;
  EXPECT_EQ(run_expect_error([&]() -> awaitable<void> { co_await b->connect(wrong); }, &message),
            Errc::permission_denied);
  EXPECT_EQ(message, "peer id mismatch: dialled " + wrong.peer.to_string() +
                         " but the peer presented " + ida.peer_id().to_string());
  expect_working(b, a, inbox);
  EXPECT_EQ(inbox.total, 1u);
}

// Each connection keeps the token its peer presented, and close_if() ends
// exactly the connections a later check refuses (e.g. a revoked member),
// on the side that runs it and, through the socket, on the other side.
TEST_F(TcpTransportTest, CloseIfEndsOnlyTheConnectionsItsCheckRefuses) {
  TransportOptions host_options;
  host_options.own_token = bytes_of("host");
  auto host = make(host_options);
  TransportOptions one_options, two_options;
  one_options.own_token = bytes_of("one");
  two_options.own_token = bytes_of("two");
  auto one = make(one_options);
  auto two = make(two_options);
  Inbox inbox(io_.get_executor());
  listen(host, inbox);
  ConnectionPtr to_host_one, to_host_two, at_host_one, at_host_two;
  run([&]() -> awaitable<void> {
    to_host_one = co_await one->connect(host->local_address());
    at_host_one = co_await inbox.next();
    to_host_two = co_await two->connect(host->local_address());
    at_host_two = co_await inbox.next();
  });
  EXPECT_EQ(as_string_view(at_host_one->remote_token()), "one");
  EXPECT_EQ(as_string_view(to_host_one->remote_token()), "host");
  const std::size_t closed = run([&]() -> awaitable<std::size_t> {
    co_return host->close_if(
        [](const Connection& c) { return as_string_view(c.remote_token()) == "one"; });
  });
  EXPECT_EQ(closed, 1u);
  EXPECT_FALSE(at_host_one->is_open());
  EXPECT_TRUE(at_host_two->is_open());
  const Errc seen_by_one =
      run_expect_error([&]() -> awaitable<void> { co_await to_host_one->receive(); });
  EXPECT_EQ(seen_by_one, Errc::connection_closed);
  run([&]() -> awaitable<void> {
    co_await to_host_two->send(bytes_of("still here"));
    const Bytes got = co_await at_host_two->receive();
    EXPECT_EQ(text_of(got), "still here");
  });
  EXPECT_EQ(run([&]() -> awaitable<std::size_t> {
              co_return host->close_if([](const Connection&) { return false; });
            }),
            0u);
}

TEST_F(TcpTransportTest, MembershipTokenRefusalClosesOnlyThatPeer) {
  TransportOptions guarded;
  guarded.own_token = bytes_of("member");
  guarded.admit = [](const PublicKey&, ByteSpan token) {
    return as_string_view(token) == "member";
  };
  auto a = make(guarded);
  TransportOptions intruder_options;
  intruder_options.own_token = bytes_of("intruder");
  auto intruder = make(intruder_options);
  TransportOptions member_options;
  member_options.own_token = bytes_of("member");
  auto member = make(member_options);
  Inbox inbox(io_.get_executor());
  listen(a, inbox);
  std::string message;
  EXPECT_EQ(
      run_expect_error([&]() -> awaitable<void> { co_await intruder->connect(a->local_address()); },
                       &message),
      Errc::permission_denied);
  EXPECT_NE(message.find("membership token refused"), std::string::npos) << message;
  expect_working(member, a, inbox);
  EXPECT_EQ(inbox.total, 1u);

  // The dialer checks the listener's token too.
  TransportOptions picky;
  picky.admit = [](const PublicKey&, ByteSpan token) { return as_string_view(token) == "other"; };
  auto c = make(picky);
  EXPECT_EQ(run_expect_error([&]() -> awaitable<void> { co_await c->connect(a->local_address()); },
                             &message),
            Errc::permission_denied);
  EXPECT_NE(message.find("membership token refused"), std::string::npos) << message;
}

TEST_F(TcpTransportTest, ConnectToClosedPortIsUnavailable) {
  auto b = make();
  std::uint16_t port = 0;
  {
    tcp::acceptor probe(io_, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    port = probe.local_endpoint().port();
  }
  PeerAddress nowhere{Identity::generate().peer_id(), "127.0.0.1", port};
  std::string message;
  EXPECT_EQ(run_expect_error([&]() -> awaitable<void> { co_await b->connect(nowhere); }, &message),
            Errc::unavailable);
  EXPECT_NE(message.find(nowhere.to_string()), std::string::npos) << message;
}

TEST_F(TcpTransportTest, HandshakeDeadlinesOnBothSides) {
  TransportOptions quick;
  quick.handshake_timeout = 300ms;
  auto a = make(quick);
  auto b = make(quick);
  Inbox inbox(io_.get_executor());
  listen(a, inbox);
  // A listener that accepts and then says nothing: the dialer gives up.
  tcp::acceptor silent(io_, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  tcp::socket held(io_);
  silent.async_accept(held, [](asio::error_code) {});
  PeerAddress mute{Identity::generate().peer_id(), "127.0.0.1", silent.local_endpoint().port()};
  auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(run_expect_error([&]() -> awaitable<void> { co_await b->connect(mute); }),
            Errc::deadline_exceeded);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 3s);
  // A dialer that says nothing: the listener drops it after its deadline.
  run([&]() -> awaitable<void> {
    tcp::socket mute_client(io_);
    auto local = a->local_address();
    co_await mute_client.async_connect(
        tcp::endpoint(asio::ip::make_address(local.host), local.port), use_awaitable);
    std::array<std::uint8_t, 16> buf;
    auto [ec, n] = co_await mute_client.async_read_some(asio::buffer(buf), as_tuple(use_awaitable));
    EXPECT_TRUE(ec) << "the listener closes a silent connection";
  });
  EXPECT_LT(std::chrono::steady_clock::now() - start, 6s);
  run([&]() -> awaitable<void> {
    held.close();
    silent.close();
    co_return;
  });
  expect_working(b, a, inbox);
}

namespace {
// Runs a raw peer against `listener` and returns the listener's side.
struct RawSession {
  std::shared_ptr<RawPeer> raw;
  ConnectionPtr accepted;
};
}  // namespace

TEST_F(TcpTransportTest, TamperedReplayedReorderedAndOversizedFramesCloseOnlyThatConnection) {
  auto& rejected = metrics::Registry::global().counter("apiary_tcp_frames_rejected_total");
  const auto rejected_before = rejected.value();
  TransportOptions options;
  options.max_message_size = 64 << 10;
  auto a = make(options);
  auto b = make(options);
  Inbox inbox(io_.get_executor());
  listen(a, inbox);
  run([&]() -> awaitable<void> {
    // A legitimate connection that must survive everything below.
    auto good_out = co_await b->connect(a->local_address());
    auto good_in = co_await inbox.next();

    auto open_raw = [&]() -> awaitable<RawSession> {
      auto raw = std::make_shared<RawPeer>(io_.get_executor());
      co_await raw->connect(a->local_address());
      RawSession session;
      session.raw = raw;
      session.accepted = co_await inbox.next();
      co_return session;
    };
    auto expect_closed = [&](ConnectionPtr c, std::string_view what) -> awaitable<void> {
      Errc code = Errc::ok;
      try {
        (void)co_await c->receive();
      } catch (const Error& e) {
        code = e.code();
      }
      EXPECT_EQ(code, Errc::connection_closed) << what;
      EXPECT_FALSE(c->is_open()) << what;
    };

    {  // tampered ciphertext
      auto s = co_await open_raw();
      co_await s.raw->write(s.raw->sealer->seal(bytes_of("genuine")));
      EXPECT_EQ(text_of(co_await s.accepted->receive()), "genuine");
      Bytes bad = s.raw->sealer->seal(bytes_of("tampered"));
      bad[frame_header_size + 1] ^= 0x10;
      co_await s.raw->write(bad);
      co_await expect_closed(s.accepted, "tampered");
    }
    {  // replayed frame
      auto s = co_await open_raw();
      Bytes f0 = s.raw->sealer->seal(bytes_of("once"));
      co_await s.raw->write(f0);
      EXPECT_EQ(text_of(co_await s.accepted->receive()), "once");
      co_await s.raw->write(f0);
      co_await expect_closed(s.accepted, "replayed");
    }
    {  // reordered frames
      auto s = co_await open_raw();
      Bytes f0 = s.raw->sealer->seal(bytes_of("first"));
      Bytes f1 = s.raw->sealer->seal(bytes_of("second"));
      co_await s.raw->write(f1);
      co_await s.raw->write(f0);
      co_await expect_closed(s.accepted, "reordered");
    }
    {  // oversized header: refused at once, the 2 GiB body is never awaited
      auto s = co_await open_raw();
      const Bytes header{0x7f, 0xff, 0xff, 0xff};  // (GCC 12: no init-lists in co_await)
      co_await s.raw->write(header);
      co_await expect_closed(s.accepted, "oversized");
    }
    {  // a frame shorter than its tag
      auto s = co_await open_raw();
      const Bytes runt{0, 0, 0, 3, 1, 2, 3};
      co_await s.raw->write(runt);
      co_await expect_closed(s.accepted, "short");
    }
    EXPECT_EQ(rejected.value() - rejected_before, 5u) << "each bad frame is counted";
    co_await good_out->send(bytes_of("unaffected"));
    EXPECT_EQ(text_of(co_await good_in->receive()), "unaffected");
    co_await good_in->send(bytes_of("indeed"));
    EXPECT_EQ(text_of(co_await good_out->receive()), "indeed");
  });
  expect_working(b, a, inbox);
}

TEST_F(TcpTransportTest, GarbageFromRawSocketsNeverHurtsTheListener) {
  TransportOptions options;
  options.handshake_timeout = 1000ms;
  auto a = make(options);
  auto b = make(options);
  Inbox inbox(io_.get_executor());
  listen(a, inbox);
  const auto previous_level = spdlog::get_level();
  spdlog::set_level(spdlog::level::err);  // 1,000 expected warnings
  constexpr int total = 1000, parallel = 25;
  int done = 0;
  auto start = std::chrono::steady_clock::now();
  run(
      [&]() -> awaitable<void> {
        auto local = a->local_address();
        tcp::endpoint target(asio::ip::make_address(local.host), local.port);
        auto worker = [&](int first) -> awaitable<void> {
          std::mt19937 rng(static_cast<unsigned>(first) * 7919u + 1);
          for (int i = first; i < total; i += parallel) {
            tcp::socket s(io_);
            auto [ec] = co_await s.async_connect(target, as_tuple(use_awaitable));
            if (!ec) {
              Bytes junk(1 + rng() % 300);
              for (auto& x : junk) x = static_cast<std::uint8_t>(rng());
              if (i % 3 == 0 && junk.size() > 3) {  // a plausible length and message type
                junk[0] = 0;
                junk[1] = static_cast<std::uint8_t>(junk.size() - 2);
                junk[2] = 1 + i % 4;
              }
              co_await asio::async_write(s, asio::buffer(junk), as_tuple(use_awaitable));
              s.shutdown(tcp::socket::shutdown_send, ec);
              std::array<std::uint8_t, 512> sink;  // wait for the listener to drop us
              for (int reads = 0; reads < 8; ++reads) {
                auto [rec, n] =
                    co_await s.async_read_some(asio::buffer(sink), as_tuple(use_awaitable));
                if (rec) break;
              }
            }
            ++done;
          }
        };
        asio::steady_timer all_done(io_);
        int finished = 0;
        for (int w = 0; w < parallel; ++w)
          asio::co_spawn(io_, worker(w), [&](std::exception_ptr) {
            if (++finished == parallel) all_done.cancel();
          });
        all_done.expires_after(50s);
        co_await all_done.async_wait(as_tuple(use_awaitable));
        EXPECT_EQ(finished, parallel);
      },
      60s);
  spdlog::set_level(previous_level);
  EXPECT_EQ(done, total);
  EXPECT_EQ(inbox.total, 0u) << "no garbage connection was authenticated";
  expect_working(b, a, inbox);
  std::printf("1000 garbage connections handled in %.2f s\n",
              std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
}

TEST_F(TcpTransportTest, CloseFailsPendingCallsAndIsIdempotent) {
  auto a = make();
  auto b = make();
  Inbox inbox(io_.get_executor());
  listen(a, inbox);
  run([&]() -> awaitable<void> {
    auto out = co_await b->connect(a->local_address());
    auto in = co_await inbox.next();
    // A receive pending when the connection is closed locally.
    std::exception_ptr pending_error;
    bool pending_done = false;
    asio::co_spawn(io_, out->receive(), [&](std::exception_ptr e, Bytes) {
      pending_error = e;
      pending_done = true;
    });
    asio::steady_timer tick(io_);
    tick.expires_after(20ms);
    co_await tick.async_wait(use_awaitable);
    EXPECT_FALSE(pending_done);
    out->close();
    out->close();
    for (int i = 0; i < 100 && !pending_done; ++i) {
      tick.expires_after(5ms);
      co_await tick.async_wait(use_awaitable);
    }
    EXPECT_TRUE(pending_done);
    if (!pending_done) co_return;
    EXPECT_EQ(code_of_error(pending_error), Errc::connection_closed);
    EXPECT_FALSE(out->is_open());
    Errc send_code = Errc::ok;
    try {
      co_await out->send(bytes_of("late"));
    } catch (const Error& e) {
      send_code = e.code();
    }
    EXPECT_EQ(send_code, Errc::connection_closed);
    // The other side sees the connection end.
    Errc receive_code = Errc::ok;
    try {
      (void)co_await in->receive();
    } catch (const Error& e) {
      receive_code = e.code();
    }
    EXPECT_EQ(receive_code, Errc::connection_closed);
    EXPECT_FALSE(in->is_open());

    // Closing a transport closes its connections.
    auto out2 = co_await b->connect(a->local_address());
    auto in2 = co_await inbox.next();
    a->close();
    a->close();
    EXPECT_FALSE(in2->is_open());
    Errc code = Errc::ok;
    try {
      (void)co_await out2->receive();
    } catch (const Error& e) {
      code = e.code();
    }
    EXPECT_EQ(code, Errc::connection_closed);
    code = Errc::ok;
    try {
      (void)co_await b->connect(a->local_address());
    } catch (const Error& e) {
      code = e.code();
    }
    EXPECT_EQ(code, Errc::unavailable) << "a closed transport no longer accepts";
  });
}

TEST_F(TcpTransportTest, WorksOverIPv6Loopback) {
  TransportPtr a, b;
  try {
    a = make({}, "::1");
    b = make({}, "::1");
  } catch (const Error& e) {
    GTEST_SKIP() << "no IPv6 loopback here: " << e.what();
  }
  Inbox inbox(io_.get_executor());
  listen(a, inbox);
  EXPECT_EQ(a->local_address().host, "::1");
  auto printed = a->local_address().to_string();
  EXPECT_NE(printed.find("@[::1]:"), std::string::npos) << printed;
  run([&]() -> awaitable<void> {
    auto out = co_await b->connect(PeerAddress::parse(printed));
    auto in = co_await inbox.next();
    EXPECT_EQ(in->remote_listen_address(), b->local_address());
    co_await out->send(bytes_of("v6"));
    EXPECT_EQ(text_of(co_await in->receive()), "v6");
  });
}

TEST_F(TcpTransportTest, BadConfigurationFailsAtCreation) {
  TransportOptions huge_token;
  huge_token.own_token = Bytes(Handshake::max_token_size + 1);
  Errc code = Errc::ok;
  try {
    make(huge_token);
  } catch (const Error& e) {
    code = e.code();
  }
  EXPECT_EQ(code, Errc::invalid_argument);
  code = Errc::ok;
  try {
    make({}, "not-an-ip");
  } catch (const Error& e) {
    code = e.code();
  }
  EXPECT_EQ(code, Errc::invalid_argument);
  // A port already taken.
  auto a = make();
  code = Errc::ok;
  try {
    run([&]() -> awaitable<TransportPtr> {
      co_return make_tcp_transport(io_.get_executor(), Identity::generate(),
                                   TcpEndpoint{"127.0.0.1", a->local_address().port}, {});
    });
  } catch (const Error& e) {
    code = e.code();
  }
  EXPECT_EQ(code, Errc::io_error);
}

// ---- limits: frame body deadline, connection and handshake admission -------------

namespace {

using test::silent_socket;

awaitable<void> test_sleep(std::chrono::milliseconds duration) {
  asio::steady_timer timer(co_await asio::this_coro::executor, duration);
  co_await timer.async_wait(as_tuple(use_awaitable));
}

std::uint64_t tcp_metrics_rejected() {
  return metrics::Registry::global().counter("apiary_tcp_frames_rejected_total").value();
}

// The code a connect to `to` fails with (ok: it connected; the connection is dropped).
awaitable<Errc> connect_error(const TransportPtr& dialer, const PeerAddress& to) {
  Errc code = Errc::ok;
  try {
    co_await dialer->connect(to);
  } catch (const Error& e) {
    code = e.code();
  }
  co_return code;
}

// True when the other side closed `socket` within `within` (a read ends).
awaitable<bool> closed_within(tcp::socket& socket, std::chrono::milliseconds within) {
  using namespace asio::experimental::awaitable_operators;
  std::array<std::uint8_t, 64> scratch;
  asio::steady_timer timer(co_await asio::this_coro::executor, within);
  auto outcome = co_await (socket.async_read_some(asio::buffer(scratch), as_tuple(use_awaitable)) ||
                           timer.async_wait(as_tuple(use_awaitable)));
  co_return outcome.index() == 0;
}

}  // namespace

TEST_F(TcpTransportTest, StalledFrameBodyIsClosedAtItsDeadline) {
  TransportOptions options;
  options.frame_body_timeout = 300ms;
  options.frame_body_min_rate = std::size_t{1} << 30;  // no allowance for the size
  auto listener = make(options);
  Inbox inbox(io_.get_executor());
  listen(listener, inbox);
  const auto rejected_before = tcp_metrics_rejected();
  run([&]() -> awaitable<void> {
    RawPeer raw(io_.get_executor());
    co_await raw.connect(listener->local_address());
    auto in = co_await inbox.next();
    // The header announces an 8 MiB body; 1000 bytes of it follow, then nothing.
    const Bytes frame = raw.sealer->seal(Bytes(8u << 20, 1));
    co_await raw.write(Bytes(frame.begin(), frame.begin() + frame_header_size + 1000));
    const auto start = std::chrono::steady_clock::now();
    std::string message;
    Errc code = Errc::ok;
    try {
      co_await in->receive();
    } catch (const Error& e) {
      code = e.code();
      message = e.what();
    }
    const auto waited = std::chrono::steady_clock::now() - start;
    EXPECT_EQ(code, Errc::connection_closed);
    EXPECT_NE(message.find("frame body not received within 3"), std::string::npos) << message;
    EXPECT_GE(waited, 250ms);
    EXPECT_LT(waited, 3s);
    EXPECT_TRUE(co_await closed_within(raw.socket, 2s));
  });
  EXPECT_GT(tcp_metrics_rejected(), rejected_before);
}

TEST_F(TcpTransportTest, FrameTrickledInPiecesArrivesWhole) {
  // Budget 0: every body grows with what arrived; the default: large bodies
  // are allocated whole when their header arrives (net/body_budget.hpp).
  for (const std::size_t budget : {std::size_t{0}, TransportOptions{}.frame_body_budget}) {
    TransportOptions options;
    options.frame_body_timeout = 5s;
    options.frame_body_budget = budget;
    auto listener = make(options);
    Inbox inbox(io_.get_executor());
    listen(listener, inbox);
    run([&]() -> awaitable<void> {
      RawPeer raw(io_.get_executor());
      co_await raw.connect(listener->local_address());
      auto in = co_await inbox.next();
      for (std::size_t size : {std::size_t{10}, std::size_t{300} << 10, std::size_t{3} << 20}) {
        Bytes message(size);
        for (std::size_t i = 0; i < size; ++i) message[i] = static_cast<std::uint8_t>(i % 251);
        const Bytes frame = raw.sealer->seal(message);
        // Five pieces with pauses between them.
        const std::size_t piece = frame.size() / 5 + 1;
        for (std::size_t offset = 0; offset < frame.size(); offset += piece) {
          const auto end = std::min(frame.size(), offset + piece);
          co_await raw.write(Bytes(frame.begin() + static_cast<std::ptrdiff_t>(offset),
                                   frame.begin() + static_cast<std::ptrdiff_t>(end)));
          co_await test_sleep(20ms);
        }
        EXPECT_EQ(co_await in->receive(), message) << size << " bytes, budget " << budget;
      }
    });
  }
}

TEST(BodyBudget, ReservationsTakeAndGiveBackAndNeverOverdraw) {
  auto budget = std::make_shared<BodyBudget>(10u << 20);
  {
    const BodyReservation first(budget, 6u << 20);
    EXPECT_TRUE(first);
    const BodyReservation second(budget, 6u << 20);  // 4 MiB left: refused, nothing taken
    EXPECT_FALSE(second);
    EXPECT_EQ(budget->left(), 4u << 20);
    const BodyReservation third(budget, 4u << 20);
    EXPECT_TRUE(third);
    EXPECT_EQ(budget->left(), 0u);
  }
  EXPECT_EQ(budget->left(), 10u << 20);
  EXPECT_FALSE(BodyReservation(nullptr, 1));
}

TEST_F(TcpTransportTest, ConnectionsPerIdentityAreRefusedBeforeTheKeyExchange) {
  TransportOptions options;
  options.limits.max_connections_per_peer = 2;
  auto listener = make(options);
  Inbox inbox(io_.get_executor());
  listen(listener, inbox);
  auto dialer = make();
  auto other = make();
  run([&]() -> awaitable<void> {
    // Every connection is held: a dropped one closes and frees its count.
    auto first = co_await dialer->connect(listener->local_address());
    auto second = co_await dialer->connect(listener->local_address());
    auto first_in = co_await inbox.next();
    auto second_in = co_await inbox.next();
    EXPECT_NE(co_await connect_error(dialer, listener->local_address()), Errc::ok);
    EXPECT_EQ(inbox.total, 2u);
    // Another identity is not affected.
    auto other_out = co_await other->connect(listener->local_address());
    auto other_in = co_await inbox.next();
    // Closing one of the identity's connections makes room for it again.
    first_in->close();
    co_await dialer->connect(listener->local_address());
    co_await inbox.next();
    EXPECT_EQ(inbox.total, 4u);
  });
}

TEST_F(TcpTransportTest, TotalConnectionsAreRefusedBeforeTheHandshake) {
  TransportOptions options;
  options.limits.max_connections = 2;
  auto listener = make(options);
  Inbox inbox(io_.get_executor());
  listen(listener, inbox);
  auto a = make();
  auto b = make();
  auto c = make();
  run([&]() -> awaitable<void> {
    // Every connection is held: a dropped one closes and frees its count.
    auto a_out = co_await a->connect(listener->local_address());
    auto b_out = co_await b->connect(listener->local_address());
    auto a_in = co_await inbox.next();
    auto b_in = co_await inbox.next();
    // Closed before the listener read a byte.
    EXPECT_EQ(co_await connect_error(c, listener->local_address()), Errc::unavailable);
    EXPECT_EQ(inbox.total, 2u);
    b_in->close();
    co_await c->connect(listener->local_address());
    co_await inbox.next();
  });
}

TEST_F(TcpTransportTest, HandshakesAreLimitedPerPrefixAndAFloodCannotLockOthersOut) {
  TransportOptions options;
  options.limits.max_handshakes = 3;
  options.limits.max_handshakes_per_prefix = 2;
  auto listener = make(options);
  Inbox inbox(io_.get_executor());
  listen(listener, inbox);
  auto honest = make();
  run([&]() -> awaitable<void> {
    const auto to = listener->local_address();
    // Two silent sockets from 127.0.1.0/24 fill that prefix's share.
    auto s1 = co_await silent_socket(to, "127.0.1.1");
    co_await test_sleep(50ms);
    auto s2 = co_await silent_socket(to, "127.0.1.2");
    auto s3 = co_await silent_socket(to, "127.0.1.3");  // a third address of the same /24
    EXPECT_TRUE(co_await closed_within(*s3, 1s));
    // Another prefix still gets in, and the table is now full (3).
    auto s4 = co_await silent_socket(to, "127.0.2.1");
    EXPECT_FALSE(co_await closed_within(*s4, 200ms));
    // An honest peer from a quiet prefix takes the busiest prefix's oldest slot.
    auto out = co_await honest->connect(to);
    auto in = co_await inbox.next();
    co_await out->send(bytes_of("through"));
    EXPECT_EQ(text_of(co_await in->receive()), "through");
    EXPECT_TRUE(co_await closed_within(*s1, 1s));
    EXPECT_FALSE(co_await closed_within(*s2, 100ms));
  });
}
