// Two `apiary node` processes on loopback; `apiary ping` between them.
#include "tests/integration/process.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <csignal>
#include <string>

namespace apiary {
namespace {

using namespace std::chrono_literals;
using test::ChildProcess;

std::string start_node(ChildProcess& node) {
  auto address = node.read_line(20s);
  if (!address) throw std::runtime_error("apiary node printed no address");
  return *address;
}

TEST(NodePing, TwoNodesPingEachOther) {
  ChildProcess a({APIARY_BIN, "node", "--listen", "127.0.0.1:0"});
  ChildProcess b({APIARY_BIN, "node", "--listen", "127.0.0.1:0"});
  const std::string address_a = start_node(a);
  const std::string address_b = start_node(b);
  ASSERT_EQ(address_a.rfind("apiary://", 0), 0u) << address_a;
  ASSERT_NE(address_a, address_b);

  for (const auto& target : {address_a, address_b}) {
    ChildProcess ping({APIARY_BIN, "ping", target, "-n", "20", "--json"});
    auto line = ping.read_line(30s);
    ASSERT_TRUE(line.has_value());
    ASSERT_EQ(ping.wait(30s), 0);
    auto report = nlohmann::json::parse(*line);
    EXPECT_EQ(report["address"], target);
    EXPECT_EQ(report["count"], 20);
    EXPECT_GT(report["rtt_p50_us"].get<double>(), 0.0);
    EXPECT_GE(report["rtt_p99_us"].get<double>(), report["rtt_p50_us"].get<double>());
    EXPECT_GT(report["handshake_ms"].get<double>(), 0.0);
  }

  a.signal(SIGTERM);
  b.signal(SIGINT);
  EXPECT_EQ(a.wait(10s), 0);
  EXPECT_EQ(b.wait(10s), 0);
}

TEST(NodePing, WrongPeerIdAndUnreachablePeerFail) {
  ChildProcess node({APIARY_BIN, "node"});
  const std::string address = start_node(node);
  // Same host and port, another peer id: the handshake must refuse it.
  std::string impostor = address;
  const auto id_start = std::string("apiary://").size();
  impostor[id_start] = impostor[id_start] == '0' ? '1' : '0';
  ChildProcess wrong({APIARY_BIN, "ping", impostor, "-n", "1"});
  EXPECT_EQ(wrong.wait(30s), 1);

  node.signal(SIGTERM);
  EXPECT_EQ(node.wait(10s), 0);
  // The node is gone: its address is unreachable now.
  ChildProcess gone({APIARY_BIN, "ping", address, "-n", "1", "--timeout-ms", "2000"});
  EXPECT_EQ(gone.wait(30s), 1);
}

}  // namespace
}  // namespace apiary
