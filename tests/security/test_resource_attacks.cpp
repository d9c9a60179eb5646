// Resource attacks on a real `apiary node` over loopback (issue 13, items 3
// and 4): stalled frames, keepalive connections that do no work, and a
// handshake flood from many source addresses. Each test asserts that the node
// stays within bounds and that an honest `apiary ping` still answers, and
// prints what it measured (one "attack:" JSON line per test).
#include "tests/integration/process.hpp"
#include "tests/security/attacker.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

namespace apiary {
namespace {

using namespace std::chrono_literals;
using test::ChildProcess;

// The binary under attack; APIARY_ATTACK_BIN points the tests at another build
// (e.g. an older one, to measure "before").
std::string node_binary() {
  const char* other = std::getenv("APIARY_ATTACK_BIN");
  return other != nullptr ? other : APIARY_BIN;
}

std::size_t attack_size(std::size_t fallback) {
  const char* text = std::getenv("APIARY_ATTACK_CONNECTIONS");
  return text != nullptr ? std::stoul(text) : fallback;
}

std::optional<nlohmann::json> honest_ping(const PeerAddress& to, int count = 20) {
  return test::honest_ping(APIARY_BIN, to, count);
}

void report(const nlohmann::json& figures) {
  std::printf("attack: %s\n", figures.dump().c_str());
  std::fflush(stdout);
}

constexpr double mib = 1024.0 * 1024.0;

TEST(ResourceAttacks, StalledFullFramesKeepMemoryBounded) {
  ChildProcess node({node_binary(), "node", "--listen", "127.0.0.1:0"});
  const PeerAddress to = test::printed_address(node);
  test::NetworkThread net;
  const std::size_t baseline = test::resident_bytes(node.pid());
  const std::size_t connections = attack_size(200);
  const auto attackers = test::stalled_frame_attackers(net, to, connections);
  std::this_thread::sleep_for(500ms);
  const std::size_t under_attack = test::resident_bytes(node.pid());
  const auto ping = honest_ping(to);
  ASSERT_TRUE(ping.has_value()) << "honest ping failed under " << connections << " stalled frames";
  report({{"attack", "stalled_frames"},
          {"connections", connections},
          {"rss_before_mib", baseline / mib},
          {"rss_under_attack_mib", under_attack / mib},
          {"ping_p50_us", (*ping)["rtt_p50_us"]},
          {"ping_p99_us", (*ping)["rtt_p99_us"]},
          {"handshake_ms", (*ping)["handshake_ms"]}});
  // 16 MiB per connection before the fix; now what arrived, in 64 KiB pieces.
  EXPECT_LT(under_attack, baseline + connections * (256u << 10) + (32u << 20));
  EXPECT_LT(under_attack, std::size_t{512} << 20);
  EXPECT_LT((*ping)["rtt_p99_us"].get<double>(), 100000.0);
  node.signal(SIGTERM);
  EXPECT_EQ(node.wait(10s), 0);
}

TEST(ResourceAttacks, KeepaliveConnectionsDoingNoWorkAreSwept) {
  ChildProcess node({APIARY_BIN, "node", "--listen", "127.0.0.1:0", "--idle-timeout-ms", "1500"});
  const PeerAddress to = test::printed_address(node);
  test::NetworkThread net;
  std::this_thread::sleep_for(200ms);
  const std::size_t descriptors_before = test::open_descriptors(node.pid());
  constexpr std::size_t connections = 20;
  std::vector<std::unique_ptr<test::RawPeer>> peers;
  for (std::size_t i = 0; i < connections; ++i) {
    peers.push_back(std::make_unique<test::RawPeer>(net.executor()));
    net.run(peers.back()->connect(to));
  }
  const std::size_t descriptors_attacked = test::open_descriptors(node.pid());
  // Every connection pings every 200 ms (and reads the answers) for up to 8 s.
  std::vector<int> answered(connections, 0);
  std::vector<double> closed_after_s(connections, -1);
  const auto start = std::chrono::steady_clock::now();
  std::uint64_t id = 1;
  for (int round = 0; round < 40; ++round) {
    std::size_t open = 0;
    for (std::size_t i = 0; i < connections; ++i) {
      if (closed_after_s[i] >= 0) continue;
      try {
        net.run(peers[i]->call(id, "ping", Bytes{1, 2, 3}), 5s);
        ++answered[i];
        ++open;
      } catch (const std::exception&) {
        closed_after_s[i] =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      }
    }
    id += 2;
    if (open == 0) break;
    std::this_thread::sleep_for(200ms);
  }
  std::this_thread::sleep_for(200ms);
  const std::size_t descriptors_after = test::open_descriptors(node.pid());
  const std::size_t resident = test::resident_bytes(node.pid());
  const auto ping = honest_ping(to);
  ASSERT_TRUE(ping.has_value());
  double latest = 0;
  for (std::size_t i = 0; i < connections; ++i) {
    EXPECT_GE(closed_after_s[i], 1.0) << "connection " << i << " outlived its pings";
    EXPECT_GE(answered[i], 3) << "pings were answered until the sweep";
    latest = std::max(latest, closed_after_s[i]);
  }
  report({{"attack", "idle_keepalive"},
          {"connections", connections},
          {"idle_timeout_ms", 1500},
          {"all_closed_after_s", latest},
          {"node_fds_before", descriptors_before},
          {"node_fds_attacked", descriptors_attacked},
          {"node_fds_after", descriptors_after},
          {"rss_mib", resident / mib},
          {"ping_p99_us", (*ping)["rtt_p99_us"]}});
  EXPECT_LT(latest, 4.0);  // idle timeout + one sweep period + slack
  EXPECT_LT(resident, std::size_t{512} << 20);
  EXPECT_LT((*ping)["rtt_p99_us"].get<double>(), 100000.0);
  EXPECT_GE(descriptors_attacked, descriptors_before + connections);
  EXPECT_LE(descriptors_after, descriptors_before + 1);
  node.signal(SIGTERM);
  EXPECT_EQ(node.wait(10s), 0);
}

TEST(ResourceAttacks, HandshakeFloodFromManyAddressesLeavesHonestPeersIn) {
  ChildProcess node({node_binary(), "node", "--listen", "127.0.0.1:0"});
  const PeerAddress to = test::printed_address(node);
  test::NetworkThread net;
  // Silent sockets from 16 prefixes (127.0.1.0/24 … 127.0.16.0/24), 40 addresses
  // each: more than the node's handshake table holds in all. The honest ping
  // comes from 127.0.0.1.
  const std::size_t per_prefix = attack_size(40);
  std::vector<std::shared_ptr<asio::ip::tcp::socket>> flood;
  for (int prefix = 1; prefix <= 16; ++prefix) {
    for (std::size_t host = 1; host <= per_prefix; ++host) {
      const std::string source = "127.0." + std::to_string(prefix) + "." + std::to_string(host);
      flood.push_back(net.run(test::silent_socket(to, source)));
    }
  }
  const auto flooded_at = std::chrono::steady_clock::now();
  std::vector<double> p99;
  std::vector<double> handshakes;
  for (int attempt = 0; attempt < 3; ++attempt) {
    const auto ping = honest_ping(to, 10);
    ASSERT_TRUE(ping.has_value()) << "honest ping " << attempt << " refused during the flood";
    p99.push_back((*ping)["rtt_p99_us"].get<double>());
    handshakes.push_back((*ping)["handshake_ms"].get<double>());
  }
  const double pinged_within_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - flooded_at).count();
  const std::size_t resident = test::resident_bytes(node.pid());
  report({{"attack", "handshake_flood"},
          {"sockets", flood.size()},
          {"prefixes", 16},
          {"rss_mib", resident / mib},
          {"pinged_within_s", pinged_within_s},
          {"ping_p99_us", p99},
          {"handshake_ms", handshakes}});
  // The flood's handshakes were still pending (5 s deadline) while the pings ran.
  EXPECT_LT(pinged_within_s, 5.0);
  for (double value : p99) EXPECT_LT(value, 100000.0);
  EXPECT_LT(resident, std::size_t{512} << 20);
  node.signal(SIGTERM);
  EXPECT_EQ(node.wait(10s), 0);
}

// Node CPU seconds spent on `count` connections made by `one` (one at a time).
template <typename Attempt>
double node_cpu_per_connection(ChildProcess& node, test::NetworkThread& net, std::size_t count,
                               Attempt one) {
  const double before = test::cpu_seconds(node.pid());
  for (std::size_t i = 0; i < count; ++i) net.run(one());
  return (test::cpu_seconds(node.pid()) - before) / static_cast<double>(count);
}

// Cheap refusal: a connection refused by the handshake table (before a byte is
// read) or for its identity (after the hello, before the key exchange) costs
// the node less than a handshake it completes.
TEST(ResourceAttacks, RefusalsCostLessThanHandshakes) {
  ChildProcess node({node_binary(), "node", "--listen", "127.0.0.1:0"});
  const PeerAddress to = test::printed_address(node);
  test::NetworkThread net;
  const std::size_t count = attack_size(1000);
  // Completed handshakes, each from a fresh identity, closed right after.
  const double handshake_s = node_cpu_per_connection(node, net, count, [&] {
    return [](asio::any_io_executor executor, PeerAddress to) -> asio::awaitable<bool> {
      test::RawPeer peer(executor);
      co_await peer.connect(to);
      co_return true;
    }(net.executor(), to);
  });
  // 127.0.7.0/24 fills its 32 handshake slots with silent sockets; every
  // further socket from it is closed at accept.
  std::vector<std::shared_ptr<asio::ip::tcp::socket>> holders;
  for (int host = 1; host <= 32; ++host)
    holders.push_back(net.run(test::silent_socket(to, "127.0.7." + std::to_string(host))));
  std::this_thread::sleep_for(100ms);
  const double refused_at_accept_s = node_cpu_per_connection(node, net, count, [&] {
    return [](PeerAddress to) -> asio::awaitable<bool> {
      auto socket = co_await test::silent_socket(to, "127.0.7.200");
      std::array<std::uint8_t, 16> scratch;
      auto [ec, n] = co_await socket->async_read_some(
          asio::buffer(scratch), asio::experimental::as_tuple(asio::use_awaitable));
      co_return ec&& n == 0;  // closed without a byte
    }(to);
  });
  // One identity holds its 8 connections; its further hellos are refused.
  const Identity crowded = Identity::generate();
  std::vector<std::unique_ptr<test::RawPeer>> held;
  for (int i = 0; i < 8; ++i) {
    held.push_back(std::make_unique<test::RawPeer>(net.executor()));
    held.back()->identity = crowded;
    net.run(held.back()->connect(to));
  }
  std::size_t refused_identity = 0;
  const double refused_at_hello_s = node_cpu_per_connection(node, net, count, [&] {
    return [](asio::any_io_executor executor, PeerAddress to, Identity identity,
              std::size_t& refused) -> asio::awaitable<bool> {
      test::RawPeer peer(executor);
      peer.identity = identity;
      try {
        co_await peer.connect(to);
      } catch (const std::exception&) {  // closed after the hello
        ++refused;
      }
      co_return true;
    }(net.executor(), to, crowded, refused_identity);
  });
  const auto ping = honest_ping(to);
  ASSERT_TRUE(ping.has_value());
  report({{"attack", "refusal_cost"},
          {"connections", count},
          {"node_cpu_us_per_handshake", handshake_s * 1e6},
          {"node_cpu_us_per_refusal_at_accept", refused_at_accept_s * 1e6},
          {"node_cpu_us_per_refusal_at_hello", refused_at_hello_s * 1e6},
          {"ping_p99_us", (*ping)["rtt_p99_us"]}});
  EXPECT_EQ(refused_identity, count);
  EXPECT_LT(refused_at_accept_s, handshake_s / 2);
  EXPECT_LT(refused_at_hello_s, handshake_s / 2);
  node.signal(SIGTERM);
  EXPECT_EQ(node.wait(10s), 0);
}

}  // namespace
}  // namespace apiary
