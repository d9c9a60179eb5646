// Resource attacks on a real `apiary dht` node over loopback (issue 13, items
// 3 and 4, the DHT side): stalled frames, idle keepalive connections and a
// handshake flood from many addresses, one after the other. Under each, a
// fresh honest client joins, 100 of its gets and DHT pings and an `apiary ping`
// answer within 100 ms p99, and the node stays under 512 MiB. (The storage
// fill is tests/security/test_dht_attacks.cpp.) One "attack:" JSON line per
// attack.
#include "tests/integration/process.hpp"
#include "tests/security/attacker.hpp"
#include "tests/security/honest_client.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace apiary {
namespace {

using namespace std::chrono_literals;
using test::bytes_of;
using test::ChildProcess;
using test::percentile;

constexpr double mib = 1024.0 * 1024.0;

class DhtNodeUnderAttack : public ::testing::Test {
 protected:
  void SetUp() override {
    to_ = test::printed_address(node_);
    auto owner = test::client_of(to_, Identity::generate());
    ASSERT_TRUE(owner->store(key_, std::nullopt, value_, dht::system_dht_time() + 600).get().ok());
    owner->shutdown();
  }

  void TearDown() override {
    node_.signal(SIGTERM);
    EXPECT_EQ(node_.wait(10s), 0);
  }

  // With the attack in place: a newcomer's join, gets, DHT pings and an
  // `apiary ping`, asserted and reported with `figures`.
  void expect_honest_service(nlohmann::json figures) {
    const auto join_start = std::chrono::steady_clock::now();
    auto honest = test::client_of(to_, Identity::generate());
    const double join_ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - join_start)
            .count();
    const auto latencies = test::honest_gets_and_pings(*honest, to_, key_, value_);
    honest->shutdown();
    const auto ping = test::honest_ping(APIARY_BIN, to_);
    ASSERT_TRUE(ping.has_value()) << "honest apiary ping failed under " << figures.dump();
    const std::size_t resident = test::resident_bytes(node_.pid());
    figures["honest_join_ms"] = join_ms;
    figures["honest_get_p50_ms"] = percentile(latencies.get_ms, 0.5);
    figures["honest_get_p99_ms"] = percentile(latencies.get_ms, 0.99);
    figures["honest_dht_ping_p99_ms"] = percentile(latencies.ping_ms, 0.99);
    figures["apiary_ping_p99_ms"] = (*ping)["rtt_p99_us"].get<double>() / 1000.0;
    figures["apiary_ping_handshake_ms"] = (*ping)["handshake_ms"];
    figures["rss_mib"] = static_cast<double>(resident) / mib;
    std::printf("attack: %s\n", figures.dump().c_str());
    std::fflush(stdout);
    EXPECT_LT(percentile(latencies.get_ms, 0.99), 100.0);
    EXPECT_LT(percentile(latencies.ping_ms, 0.99), 100.0);
    EXPECT_LT((*ping)["rtt_p99_us"].get<double>(), 100000.0);
    EXPECT_LT(resident, std::size_t{512} << 20);
  }

  ChildProcess node_{{APIARY_BIN, "dht", "--listen", "127.0.0.1:0", "--status-interval", "60"}};
  PeerAddress to_;
  const Bytes key_ = bytes_of("honest");
  const Bytes value_ = bytes_of("the honest value");
  test::NetworkThread net_;
};

TEST_F(DhtNodeUnderAttack, StalledFullFrames) {
  const auto attackers = test::stalled_frame_attackers(net_, to_, 200);
  expect_honest_service({{"attack", "dht node: stalled frames"}, {"connections", 200}});
}

TEST_F(DhtNodeUnderAttack, IdleKeepaliveConnections) {
  // Fresh identities that authenticate, ping once and then hold the connection:
  // 200 from the honest client's own /24 (the node takes 256 from one prefix).
  std::vector<std::unique_ptr<test::RawPeer>> holders;
  std::uint64_t id = 1;
  for (int i = 0; i < 200; ++i) {
    holders.push_back(std::make_unique<test::RawPeer>(net_.executor()));
    net_.run(holders.back()->connect(to_));
    net_.run(holders.back()->call(id, "ping", Bytes{1, 2, 3}));
    id += 2;
  }
  expect_honest_service({{"attack", "dht node: idle keepalive connections"}, {"connections", 200}});
}

TEST_F(DhtNodeUnderAttack, HandshakeFloodFromManyAddresses) {
  // Silent sockets from 16 prefixes (127.0.1.0/24 … 127.0.16.0/24), 40 each:
  // more than the handshake table holds. The honest client is 127.0.0.1.
  std::vector<std::shared_ptr<asio::ip::tcp::socket>> flood;
  for (int prefix = 1; prefix <= 16; ++prefix)
    for (int host = 1; host <= 40; ++host)
      flood.push_back(net_.run(test::silent_socket(
          to_, "127.0." + std::to_string(prefix) + "." + std::to_string(host))));
  // Within the flood's 5 s handshake deadline.
  expect_honest_service({{"attack", "dht node: handshake flood"}, {"sockets", flood.size()}});
}

}  // namespace
}  // namespace apiary
