// Link emulator over the in-process transport: latency, bandwidth, order,
// random disconnects, and a late RPC response that the caller drops.
#include "core/identity.hpp"
#include "core/metrics.hpp"
#include "net/inproc_transport.hpp"
#include "net/link_emulator.hpp"
#include "net/rpc.hpp"
#include "tests/net/test_rpc_util.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <deque>
#include <memory>
#include <vector>

namespace apiary {
namespace {

using namespace std::chrono_literals;
using test::bytes_of;
using test::run;
using test::string_of;
using Clock = std::chrono::steady_clock;

struct Pair {
  asio::io_context ctx;
  std::shared_ptr<InprocNetwork> network = InprocNetwork::create(ctx.get_executor());
  TransportPtr server = network->create_transport(Identity::generate());
  std::deque<ConnectionPtr> accepted;

  Pair() {
    server->listen([this](ConnectionPtr c) { accepted.push_back(std::move(c)); });
  }
  TransportPtr shaped_client(LinkProfile profile) {
    return make_link_emulator(network->create_transport(Identity::generate()), profile);
  }
};

TEST(LinkEmulator, AddsConfiguredLatencyToRpcRoundTrips) {
  Pair pair;
  LinkProfile profile;
  profile.latency = 20ms;
  rpc::RpcNode server(pair.network->create_transport(Identity::generate()));
  server.add_method(
      "echo", [](const rpc::RequestContext&, Bytes r) -> asio::awaitable<Bytes> { co_return r; });
  server.start();
  rpc::RpcNode client(pair.shaped_client(profile));
  auto measure = [](rpc::RpcNode& node, PeerAddress to) -> asio::awaitable<Clock::duration> {
    co_await node.connect(to);
    std::vector<Clock::duration> rtts;
    for (int i = 0; i < 7; ++i) {
      const auto start = Clock::now();
      co_await node.call(to, "echo", bytes_of("x"));
      rtts.push_back(Clock::now() - start);
    }
    std::sort(rtts.begin(), rtts.end());
    // Every round trip crosses the emulated link twice: never faster than 2 × latency.
    if (rtts.front() < 40ms) throw std::runtime_error("round trip faster than 2 × latency");
    co_return rtts[rtts.size() / 2];  // the median, robust to a scheduling hiccup
  };
  const auto median = run(pair.ctx, measure(client, server.local_address()));
  EXPECT_LT(median, 60ms);
}

// close_if() reaches through the emulator: the shaped connection ends with
// the inner one it wraps, and reports the token the inner one carries.
TEST(LinkEmulator, CloseIfClosesTheShapedConnection) {
  Pair pair;
  TransportOptions server_options;
  server_options.own_token = bytes_of("server");
  auto shaped_server = make_link_emulator(
      pair.network->create_transport(Identity::generate(), server_options), LinkProfile{});
  std::deque<ConnectionPtr> accepted;
  shaped_server->listen([&](ConnectionPtr c) { accepted.push_back(std::move(c)); });
  auto client = pair.network->create_transport(Identity::generate());
  auto connection = run(pair.ctx, client->connect(shaped_server->local_address()));
  pair.ctx.restart();
  pair.ctx.poll();
  ASSERT_EQ(accepted.size(), 1u);
  EXPECT_EQ(string_of(Bytes(connection->remote_token().begin(), connection->remote_token().end())),
            "server");
  EXPECT_EQ(shaped_server->close_if([](const Connection&) { return true; }), 1u);
  pair.ctx.restart();
  pair.ctx.poll();
  EXPECT_FALSE(accepted.front()->is_open());
}

TEST(LinkEmulator, BandwidthCapWithinTwentyPercent) {
  Pair pair;
  LinkProfile profile;
  profile.bandwidth_bytes_per_s = 8e6;
  auto client = pair.shaped_client(profile);
  auto transfer = [](TransportPtr client, PeerAddress to,
                     std::deque<ConnectionPtr>& accepted) -> asio::awaitable<double> {
    auto connection = co_await client->connect(to);
    constexpr int count = 64;  // 4 MiB: about half a second at 8 MB/s
    constexpr std::size_t size = 64 * 1024;
    const auto start = Clock::now();
    auto executor = co_await asio::this_coro::executor;
    asio::co_spawn(
        executor,
        [](ConnectionPtr c) -> asio::awaitable<void> {
          for (int i = 0; i < count; ++i) co_await c->send(Bytes(size, 1));
        }(connection),
        asio::detached);
    while (accepted.empty()) co_await test::sleep_for(1ms);
    std::size_t received = 0;
    for (int i = 0; i < count; ++i) received += (co_await accepted.front()->receive()).size();
    const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
    co_return static_cast<double>(received) / seconds;
  };
  const double rate = run(pair.ctx, transfer(client, pair.server->local_address(), pair.accepted));
  EXPECT_GT(rate, 0.8 * 8e6);
  EXPECT_LT(rate, 1.2 * 8e6);
}

TEST(LinkEmulator, JitterKeepsOrderAndDisconnectsAreRandomButBounded) {
  Pair pair;
  LinkProfile profile;
  profile.latency = 2ms;
  profile.jitter = 5ms;
  auto client = pair.shaped_client(profile);
  auto ordered = [](TransportPtr client, PeerAddress to,
                    std::deque<ConnectionPtr>& accepted) -> asio::awaitable<bool> {
    auto connection = co_await client->connect(to);
    for (std::uint8_t i = 0; i < 200; ++i) co_await connection->send(Bytes(1, i));
    while (accepted.empty()) co_await test::sleep_for(1ms);
    for (std::uint8_t i = 0; i < 200; ++i) {
      if (co_await accepted.front()->receive() != Bytes(1, i)) co_return false;
    }
    co_return true;
  };
  EXPECT_TRUE(run(pair.ctx, ordered(client, pair.server->local_address(), pair.accepted)));

  LinkProfile flaky;
  flaky.disconnect_per_s = 20;  // mean lifetime 50 ms
  auto flaky_client = pair.shaped_client(flaky);
  auto lifetime = [](TransportPtr client, PeerAddress to) -> asio::awaitable<Clock::duration> {
    auto connection = co_await client->connect(to);
    const auto start = Clock::now();
    try {
      for (;;) co_await connection->receive();
    } catch (const Error&) {
    }
    co_return Clock::now() - start;
  };
  // Exponential with mean 50 ms: 2 s is > 40 means away.
  EXPECT_LT(run(pair.ctx, lifetime(flaky_client, pair.server->local_address()), 2s), 2s);
}

TEST(LinkEmulator, LateResponseAfterDeadlineIsDropped) {
  Pair pair;
  LinkProfile profile;
  profile.latency = 60ms;
  rpc::RpcNode server(pair.network->create_transport(Identity::generate()));
  server.add_method(
      "echo", [](const rpc::RequestContext&, Bytes r) -> asio::awaitable<Bytes> { co_return r; });
  server.start();
  rpc::RpcNode client(pair.shaped_client(profile));
  auto& late = metrics::Registry::global().counter("apiary_rpc_late_responses_total");
  const auto late_before = late.value();
  auto scenario = [](rpc::RpcNode& node, PeerAddress to) -> asio::awaitable<Errc> {
    co_await node.connect(to);
    Errc code = Errc::ok;
    try {
      // The response needs 120 ms; the cancel frame reaches the server too late to stop it.
      co_await node.call(to, "echo", bytes_of("late"), {.timeout = 80ms});
    } catch (const Error& e) {
      code = e.code();
    }
    co_await test::sleep_for(150ms);
    // The node stays healthy after the late response.
    if (string_of(co_await node.call(to, "echo", bytes_of("ok"))) != "ok") code = Errc::internal;
    co_return code;
  };
  EXPECT_EQ(run(pair.ctx, scenario(client, server.local_address())), Errc::deadline_exceeded);
  EXPECT_EQ(late.value(), late_before + 1);
}

}  // namespace
}  // namespace apiary
