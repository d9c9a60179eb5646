// RpcNode over the in-process transport: unary calls, errors, deadlines,
// cancellation, connection pooling, malformed frames and streams.
#include "core/identity.hpp"
#include "core/metrics.hpp"
#include "net/inproc_transport.hpp"
#include "net/rpc.hpp"
#include "net/rpc_frame.hpp"
#include "tests/net/test_rpc_util.hpp"

#include <gtest/gtest.h>
#include <asio/experimental/awaitable_operators.hpp>

#include <memory>
#include <vector>

namespace apiary {
namespace {

using namespace std::chrono_literals;
using namespace asio::experimental::awaitable_operators;
using test::bytes_of;
using test::run;
using test::string_of;

struct Peers {
  asio::io_context ctx;
  std::shared_ptr<InprocNetwork> network = InprocNetwork::create(ctx.get_executor());
  std::vector<std::unique_ptr<rpc::RpcNode>> nodes;

  rpc::RpcNode& add(rpc::RpcOptions options = {}, TransportOptions transport_options = {}) {
    auto transport = network->create_transport(Identity::generate(), transport_options);
    nodes.push_back(std::make_unique<rpc::RpcNode>(transport, options));
    nodes.back()->start();
    return *nodes.back();
  }
};

void add_echo(rpc::RpcNode& node) {
  node.add_method("echo", [](const rpc::RequestContext&, Bytes request) -> asio::awaitable<Bytes> {
    co_return request;
  });
}

Errc call_error(asio::io_context& ctx, asio::awaitable<Bytes> call,
                std::string* message = nullptr) {
  try {
    run(ctx, std::move(call));
  } catch (const Error& e) {
    if (message) *message = e.what();
    return e.code();
  }
  return Errc::ok;
}

TEST(Rpc, EchoAndCallerIdentity) {
  Peers peers;
  auto& server = peers.add();
  auto& client = peers.add();
  PeerId seen_peer;
  std::optional<PeerAddress> seen_reply;
  server.add_method("whoami", [&](const rpc::RequestContext& ctx, Bytes) -> asio::awaitable<Bytes> {
    seen_peer = ctx.peer;
    seen_reply = ctx.reply_address;
    co_return bytes_of("you");
  });
  add_echo(server);
  EXPECT_EQ(
      string_of(run(peers.ctx, client.call(server.local_address(), "echo", bytes_of("hello")))),
      "hello");
  EXPECT_EQ(string_of(run(peers.ctx, client.call(server.local_address(), "whoami", {}))), "you");
  EXPECT_EQ(seen_peer, client.peer_id());
  ASSERT_TRUE(seen_reply.has_value());
  EXPECT_EQ(*seen_reply, client.local_address());
  // Empty payloads work too.
  EXPECT_TRUE(run(peers.ctx, client.call(server.local_address(), "echo", {})).empty());
}

TEST(Rpc, UnknownMethodIsNotFound) {
  Peers peers;
  auto& server = peers.add();
  auto& client = peers.add();
  std::string message;
  EXPECT_EQ(call_error(peers.ctx, client.call(server.local_address(), "nope", {}), &message),
            Errc::not_found);
  EXPECT_NE(message.find("unknown method nope"), std::string::npos) << message;
}

TEST(Rpc, HandlerErrorsPropagate) {
  Peers peers;
  auto& server = peers.add();
  auto& client = peers.add();
  server.add_method("refuse", [](const rpc::RequestContext&, Bytes) -> asio::awaitable<Bytes> {
    throw Error(Errc::invalid_argument, "bad shoe size");
    co_return Bytes{};
  });
  server.add_method("crash", [](const rpc::RequestContext&, Bytes) -> asio::awaitable<Bytes> {
    throw std::runtime_error("boom");
    co_return Bytes{};
  });
  std::string message;
  EXPECT_EQ(call_error(peers.ctx, client.call(server.local_address(), "refuse", {}), &message),
            Errc::invalid_argument);
  EXPECT_NE(message.find("bad shoe size"), std::string::npos) << message;
  EXPECT_EQ(call_error(peers.ctx, client.call(server.local_address(), "crash", {}), &message),
            Errc::internal);
  EXPECT_NE(message.find("boom"), std::string::npos) << message;
  // The connection survives handler errors.
  add_echo(server);
  EXPECT_EQ(string_of(run(peers.ctx, client.call(server.local_address(), "echo", bytes_of("ok")))),
            "ok");
  EXPECT_EQ(client.connection_count(), 1u);
}

// Starts `per_client` echo calls from every client at once and waits for all.
asio::awaitable<void> many_calls(std::vector<rpc::RpcNode*> clients, PeerAddress server,
                                 int per_client, int& answered) {
  auto executor = co_await asio::this_coro::executor;
  auto one = [](rpc::RpcNode& node, PeerAddress to, std::string expect,
                int& ok) -> asio::awaitable<void> {
    Bytes reply = co_await node.call(to, "echo", bytes_of(expect), {.timeout = 60s});
    if (string_of(reply) == expect) ++ok;
  };
  const int total = per_client * static_cast<int>(clients.size());
  int finished = 0;
  asio::steady_timer all_done(executor, asio::steady_timer::time_point::max());
  for (std::size_t c = 0; c < clients.size(); ++c) {
    for (int i = 0; i < per_client; ++i) {
      asio::co_spawn(
          executor, one(*clients[c], server, std::to_string(c) + ":" + std::to_string(i), answered),
          [&](std::exception_ptr) {
            if (++finished == total) all_done.cancel();
          });
    }
  }
  std::error_code ec;
  co_await all_done.async_wait(asio::redirect_error(asio::use_awaitable, ec));
}

TEST(Rpc, TenThousandConcurrentCallsOverEightConnections) {
  Peers peers;
  auto& server = peers.add();
  add_echo(server);
  std::vector<rpc::RpcNode*> clients;
  for (int i = 0; i < 8; ++i) clients.push_back(&peers.add());
  int answered = 0;
  run(peers.ctx, many_calls(clients, server.local_address(), 1250, answered));
  EXPECT_EQ(answered, 10000);
  for (auto* client : clients) EXPECT_EQ(client->connection_count(), 1u);
  EXPECT_EQ(server.connection_count(), 8u);
}

TEST(Rpc, DeadlineFiresAndLateResponseIsDropped) {
  Peers peers;
  auto& server = peers.add();
  auto& client = peers.add();
  add_echo(server);
  server.add_method("slow", [](const rpc::RequestContext&, Bytes) -> asio::awaitable<Bytes> {
    co_await test::sleep_for(150ms);
    co_return bytes_of("late");
  });
  auto& late = metrics::Registry::global().counter("apiary_rpc_late_responses_total");
  const auto late_before = late.value();
  const auto started = std::chrono::steady_clock::now();
  EXPECT_EQ(
      call_error(peers.ctx, client.call(server.local_address(), "slow", {}, {.timeout = 30ms})),
      Errc::deadline_exceeded);
  EXPECT_LT(std::chrono::steady_clock::now() - started, 140ms);
  // Let the late response arrive; it is dropped and the node stays healthy.
  run(peers.ctx, test::sleep_for(250ms));
  EXPECT_EQ(string_of(run(peers.ctx, client.call(server.local_address(), "echo", bytes_of("x")))),
            "x");
  // Cancel frames may stop the handler before it answers; either way nothing leaks through.
  EXPECT_GE(late.value(), late_before);
}

TEST(Rpc, CancellationThroughAwaitableOperators) {
  Peers peers;
  auto& server = peers.add();
  auto& client = peers.add();
  bool handler_cancelled = false;
  server.add_method("forever", [&](const rpc::RequestContext&, Bytes) -> asio::awaitable<Bytes> {
    try {
      co_await test::sleep_for(10s);
    } catch (const std::exception&) {
      handler_cancelled = true;
      throw;
    }
    co_return Bytes{};
  });
  auto race = [](rpc::RpcNode& node, PeerAddress to) -> asio::awaitable<std::size_t> {
    asio::steady_timer timer(co_await asio::this_coro::executor, 50ms);
    auto result = co_await (node.call(to, "forever", {}, {.timeout = 20s}) ||
                            timer.async_wait(asio::use_awaitable));
    co_return result.index();
  };
  const auto started = std::chrono::steady_clock::now();
  EXPECT_EQ(run(peers.ctx, race(client, server.local_address())), 1u);
  EXPECT_LT(std::chrono::steady_clock::now() - started, 2s);
  // The cancel frame reaches the server and stops the handler.
  run(peers.ctx, test::sleep_for(50ms));
  EXPECT_TRUE(handler_cancelled);
}

TEST(Rpc, SlowHandlerDoesNotBlockOthers) {
  Peers peers;
  auto& server = peers.add();
  auto& client = peers.add();
  add_echo(server);
  server.add_method("slow", [](const rpc::RequestContext&, Bytes) -> asio::awaitable<Bytes> {
    co_await test::sleep_for(5s);
    co_return Bytes{};
  });
  auto both = [](rpc::RpcNode& node, PeerAddress to) -> asio::awaitable<std::size_t> {
    auto result = co_await (node.call(to, "slow", {}) || node.call(to, "echo", bytes_of("fast")));
    co_return result.index();
  };
  const auto started = std::chrono::steady_clock::now();
  EXPECT_EQ(run(peers.ctx, both(client, server.local_address())), 1u);
  EXPECT_LT(std::chrono::steady_clock::now() - started, 2s);
}

TEST(Rpc, ConcurrentCallsDialOnce) {
  Peers peers;
  auto& server = peers.add();
  auto& client = peers.add();
  add_echo(server);
  int answered = 0;
  run(peers.ctx, many_calls({&client}, server.local_address(), 100, answered));
  EXPECT_EQ(answered, 100);
  EXPECT_EQ(client.connection_count(), 1u);
  EXPECT_EQ(server.connection_count(), 1u);
  // The server calls back over the same (inbound) connection.
  add_echo(client);
  EXPECT_EQ(
      string_of(run(peers.ctx, server.call(client.local_address(), "echo", bytes_of("back")))),
      "back");
  EXPECT_EQ(server.connection_count(), 1u);
}

TEST(Rpc, PendingCallFailsWhenPeerDiesAndRedialWorks) {
  Peers peers;
  auto& server = peers.add();
  auto& client = peers.add();
  server.add_method("slow", [](const rpc::RequestContext&, Bytes) -> asio::awaitable<Bytes> {
    co_await test::sleep_for(5s);
    co_return Bytes{};
  });
  auto call_and_kill = [](rpc::RpcNode& node, PeerAddress to,
                          std::shared_ptr<InprocNetwork> network) -> asio::awaitable<Errc> {
    auto executor = co_await asio::this_coro::executor;
    asio::co_spawn(
        executor,
        [](std::shared_ptr<InprocNetwork> net, PeerId peer) -> asio::awaitable<void> {
          co_await test::sleep_for(30ms);
          net->kill(peer);
        }(network, to.peer),
        asio::detached);
    try {
      co_await node.call(to, "slow", {});
    } catch (const Error& e) {
      co_return e.code();
    }
    co_return Errc::ok;
  };
  EXPECT_EQ(run(peers.ctx, call_and_kill(client, server.local_address(), peers.network), 3s),
            Errc::connection_closed);
  // The dead peer is unreachable now.
  EXPECT_EQ(call_error(peers.ctx, client.call(server.local_address(), "slow", {})),
            Errc::unavailable);

  // Re-dial after a drop: the server's idle sweep closes the connection.
  rpc::RpcOptions short_idle;
  short_idle.idle_timeout = 40ms;
  auto& server2 = peers.add(short_idle);
  add_echo(server2);
  EXPECT_EQ(string_of(run(peers.ctx, client.call(server2.local_address(), "echo", bytes_of("1")))),
            "1");
  run(peers.ctx, test::sleep_for(150ms));
  EXPECT_EQ(server2.connection_count(), 0u);
  EXPECT_EQ(string_of(run(peers.ctx, client.call(server2.local_address(), "echo", bytes_of("2")))),
            "2");
}

TEST(Rpc, MalformedFrameClosesOnlyThatConnection) {
  Peers peers;
  auto& server = peers.add();
  auto& client = peers.add();
  add_echo(server);
  auto raw_transport = peers.network->create_transport(Identity::generate());
  // Sends one raw frame and reports how the connection ends.
  auto attack = [](TransportPtr transport, PeerAddress to, Bytes frame) -> asio::awaitable<Errc> {
    auto connection = co_await transport->connect(to);
    co_await connection->send(std::move(frame));
    try {
      co_await connection->receive();
    } catch (const Error& e) {
      co_return e.code();
    }
    co_return Errc::ok;
  };
  EXPECT_EQ(string_of(run(peers.ctx, client.call(server.local_address(), "echo", bytes_of("a")))),
            "a");
  const Bytes invalid{0xc1, 0x00, 0xff};  // 0xc1 is never valid msgpack
  EXPECT_EQ(run(peers.ctx, attack(raw_transport, server.local_address(), invalid), 5s),
            Errc::connection_closed);
  // A frame with a valid encoding but the wrong shape is refused the same way.
  const Bytes wrong_shape{0x92, 0x00, 0xa1, 'x'};  // [0, "x"]
  EXPECT_EQ(run(peers.ctx, attack(raw_transport, server.local_address(), wrong_shape), 5s),
            Errc::connection_closed);
  EXPECT_EQ(string_of(run(peers.ctx, client.call(server.local_address(), "echo", bytes_of("b")))),
            "b");
  EXPECT_EQ(server.connection_count(), 1u);
}

TEST(Rpc, StopFailsPendingCallsWithCancelled) {
  Peers peers;
  auto& server = peers.add();
  auto& client = peers.add();
  server.add_method("slow", [](const rpc::RequestContext&, Bytes) -> asio::awaitable<Bytes> {
    co_await test::sleep_for(5s);
    co_return Bytes{};
  });
  auto call_and_stop = [](rpc::RpcNode& node, PeerAddress to) -> asio::awaitable<Errc> {
    auto executor = co_await asio::this_coro::executor;
    asio::co_spawn(
        executor,
        [](rpc::RpcNode& n) -> asio::awaitable<void> {
          co_await test::sleep_for(30ms);
          n.stop();
        }(node),
        asio::detached);
    try {
      co_await node.call(to, "slow", {});
    } catch (const Error& e) {
      co_return e.code();
    }
    co_return Errc::ok;
  };
  EXPECT_EQ(run(peers.ctx, call_and_stop(client, server.local_address()), 3s), Errc::cancelled);
}

// ---- streams ---------------------------------------------------------------------

asio::awaitable<void> echo_stream(const rpc::RequestContext&, rpc::StreamPtr stream) {
  while (auto message = co_await stream->read()) co_await stream->write(std::move(*message));
  co_await stream->close_write();
}

TEST(RpcStream, EchoWithSmallWindow) {
  rpc::RpcOptions options;
  options.stream_window_bytes = 64 * 1024;
  Peers peers;
  auto& server = peers.add(options);
  auto& client = peers.add(options);
  server.add_stream_method("echo", echo_stream);
  auto talk = [](rpc::RpcNode& node, PeerAddress to) -> asio::awaitable<std::size_t> {
    auto stream = co_await node.open_stream(to, "echo");
    auto executor = co_await asio::this_coro::executor;
    // Writer and reader run concurrently: 4 MiB through a 64 KiB window.
    asio::co_spawn(
        executor,
        [](rpc::StreamPtr s) -> asio::awaitable<void> {
          for (int i = 0; i < 256; ++i)
            co_await s->write(Bytes(16 * 1024, static_cast<std::uint8_t>(i)));
          co_await s->close_write();
        }(stream),
        asio::detached);
    std::size_t received = 0;
    int index = 0;
    while (auto message = co_await stream->read(5s)) {
      if (message->size() != 16 * 1024 || (*message)[0] != static_cast<std::uint8_t>(index)) {
        throw std::runtime_error("stream out of order");
      }
      ++index;
      received += message->size();
    }
    co_return received;
  };
  EXPECT_EQ(run(peers.ctx, talk(client, server.local_address())), 256u * 16 * 1024);
}

TEST(RpcStream, SenderBlocksWhenReceiverDoesNotRead) {
  rpc::RpcOptions options;
  options.stream_window_bytes = 64 * 1024;
  Peers peers;
  auto& server = peers.add(options);
  auto& client = peers.add(options);
  server.add_stream_method(
      "sink", [](const rpc::RequestContext&, rpc::StreamPtr stream) -> asio::awaitable<void> {
        co_await test::sleep_for(2s);  // not reading
        (void)stream;
      });
  auto flood = [](rpc::RpcNode& node,
                  PeerAddress to) -> asio::awaitable<std::pair<std::size_t, std::size_t>> {
    auto stream = co_await node.open_stream(to, "sink");
    std::size_t written = 0;
    asio::steady_timer timer(co_await asio::this_coro::executor, 200ms);
    auto write_all = [](rpc::StreamPtr s, std::size_t& count) -> asio::awaitable<void> {
      for (int i = 0; i < 64; ++i) {
        co_await s->write(Bytes(16 * 1024));
        count += 16 * 1024;
      }
    };
    auto result = co_await (write_all(stream, written) || timer.async_wait(asio::use_awaitable));
    stream->cancel();
    co_return std::pair{result.index(), written};
  };
  auto [winner, written] = run(peers.ctx, flood(client, server.local_address()));
  EXPECT_EQ(winner, 1u);           // the writer was still blocked on credit
  EXPECT_EQ(written, 64u * 1024);  // exactly one window
}

TEST(RpcStream, ReadTimeoutUnknownMethodAndCancel) {
  Peers peers;
  auto& server = peers.add();
  auto& client = peers.add();
  Errc seen_by_server = Errc::ok;
  server.add_stream_method(
      "wait", [&](const rpc::RequestContext&, rpc::StreamPtr stream) -> asio::awaitable<void> {
        try {
          co_await stream->read(5s);
        } catch (const Error& e) {
          seen_by_server = e.code();
        }
      });
  auto scenario = [](rpc::RpcNode& node, PeerAddress to) -> asio::awaitable<std::vector<Errc>> {
    std::vector<Errc> codes;
    try {
      co_await node.open_stream(to, "missing");
      codes.push_back(Errc::ok);
    } catch (const Error& e) {
      codes.push_back(e.code());
    }
    auto stream = co_await node.open_stream(to, "wait");
    try {
      co_await stream->read(30ms);
      codes.push_back(Errc::ok);
    } catch (const Error& e) {
      codes.push_back(e.code());
    }
    stream->cancel();
    try {
      co_await stream->write(Bytes(1, 1));
      codes.push_back(Errc::ok);
    } catch (const Error& e) {
      codes.push_back(e.code());
    }
    co_await test::sleep_for(50ms);
    co_return codes;
  };
  auto codes = run(peers.ctx, scenario(client, server.local_address()));
  ASSERT_EQ(codes.size(), 3u);
  EXPECT_EQ(codes[0], Errc::not_found);
  EXPECT_EQ(codes[1], Errc::deadline_exceeded);
  EXPECT_EQ(codes[2], Errc::cancelled);
  EXPECT_EQ(seen_by_server, Errc::cancelled);
}

// A raw peer that calls `method` every 20 ms for up to `span` and reports how
// long its connection lived (span when it survived).
asio::awaitable<std::chrono::milliseconds> keep_calling(TransportPtr transport, PeerAddress to,
                                                        std::string method,
                                                        std::chrono::milliseconds span) {
  auto connection = co_await transport->connect(to);
  const auto start = std::chrono::steady_clock::now();
  std::uint64_t id = 1;
  try {
    while (std::chrono::steady_clock::now() - start < span) {
      co_await connection->send(rpc::detail::encode_request(id, method, bytes_of("x")));
      id += 2;
      co_await connection->receive();  // the reply
      co_await test::sleep_for(20ms);
    }
  } catch (const Error&) {
    co_return std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::steady_clock::now() - start);
  }
  co_return span;
}

TEST(RpcLimits, KeepalivePingsDoNotDefeatTheIdleSweep) {
  rpc::RpcOptions options;
  options.idle_timeout = 100ms;
  Peers peers;
  auto& server = peers.add(options);
  add_echo(server);
  server.add_method(
      "ping", [](const rpc::RequestContext&, Bytes b) -> asio::awaitable<Bytes> { co_return b; });
  auto raw = peers.network->create_transport(Identity::generate());
  // Pings every 20 ms: closed after the idle timeout (plus one sweep period).
  const auto pinged = run(peers.ctx, keep_calling(raw, server.local_address(), "ping", 2000ms), 5s);
  EXPECT_GE(pinged, 90ms);
  EXPECT_LT(pinged, 1000ms);
  // Calls that do work keep the connection.
  const auto worked = run(peers.ctx, keep_calling(raw, server.local_address(), "echo", 600ms), 5s);
  EXPECT_EQ(worked, 600ms);
  // Unknown methods are no work either.
  const auto unknown =
      run(peers.ctx, keep_calling(raw, server.local_address(), "nope", 2000ms), 5s);
  EXPECT_LT(unknown, 1000ms);
}

TEST(RpcLimits, StreamsAndCallsShareOneInboundBudget) {
  rpc::RpcOptions options;
  options.max_inbound_calls = 2;
  Peers peers;
  auto& server = peers.add(options);
  auto& client = peers.add();
  add_echo(server);
  server.add_stream_method("echo", echo_stream);
  auto open = [](rpc::RpcNode& node, PeerAddress to) -> asio::awaitable<rpc::StreamPtr> {
    co_return co_await node.open_stream(to, "echo");
  };
  auto first = run(peers.ctx, open(client, server.local_address()));
  auto second = run(peers.ctx, open(client, server.local_address()));
  // Both slots are held by streams: a third stream and a call are refused.
  std::string message;
  try {
    run(peers.ctx, open(client, server.local_address()));
    ADD_FAILURE() << "third stream opened";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::resource_exhausted) << e.what();
  }
  EXPECT_EQ(call_error(peers.ctx, client.call(server.local_address(), "echo", {}), &message),
            Errc::resource_exhausted);
  EXPECT_NE(message.find("streams"), std::string::npos) << message;
  // A finished stream gives its slot back.
  auto finish = [](rpc::StreamPtr stream) -> asio::awaitable<void> {
    co_await stream->close_write();
    while (co_await stream->read(5s)) {
    }
  };
  run(peers.ctx, finish(first));
  run(peers.ctx, test::sleep_for(50ms));
  EXPECT_EQ(string_of(run(peers.ctx, client.call(server.local_address(), "echo", bytes_of("in")))),
            "in");
  second->cancel();
}

}  // namespace
}  // namespace apiary
