// The admission policy (net/admission.hpp) without sockets: prefixes, the
// per-prefix and total handshake limits, eviction from the busiest prefix, and
// the total and per-identity connection limits.
#include "net/admission.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace apiary {
namespace {

PeerId peer(std::uint8_t n) {
  PeerId id;
  id.bytes[0] = n;
  return id;
}

Admission::Connection inbound(std::uint8_t n, std::string prefix = "10.0.0.0/24") {
  return {peer(n), std::move(prefix), true};
}

std::string prefix_of(const char* address) {
  return address_prefix(asio::ip::make_address(address));
}

ConnectionLimits small_limits() {
  ConnectionLimits limits;
  limits.max_connections = 100;
  limits.max_connections_per_peer = 2;
  limits.max_handshakes = 4;
  limits.max_handshakes_per_prefix = 3;
  return limits;
}

TEST(Admission, PrefixesAreSlash24AndSlash64) {
  EXPECT_EQ(prefix_of("10.1.2.3"), "10.1.2.0/24");
  EXPECT_EQ(prefix_of("10.1.2.250"), "10.1.2.0/24");
  EXPECT_NE(prefix_of("10.1.3.3"), prefix_of("10.1.2.3"));
  EXPECT_EQ(prefix_of("::ffff:10.1.2.3"), "10.1.2.0/24");  // v4-mapped counts as IPv4
  EXPECT_EQ(prefix_of("2001:db8:1:2:aaaa::1"), "2001:db8:1:2::/64");
  EXPECT_EQ(prefix_of("2001:db8:1:2:ffff:1:2:3"), prefix_of("2001:db8:1:2::9"));
  EXPECT_NE(prefix_of("2001:db8:1:3::1"), prefix_of("2001:db8:1:2::1"));
}

TEST(Admission, HandshakesPerPrefixAreCappedAndReleased) {
  Admission admission(small_limits());
  std::vector<Admission::Ticket> tickets;
  for (int i = 0; i < 3; ++i) {
    auto verdict = admission.begin_handshake("10.0.0.0/24");
    ASSERT_TRUE(verdict.admitted);
    EXPECT_FALSE(verdict.evicted);
    tickets.push_back(verdict.ticket);
  }
  auto refused = admission.begin_handshake("10.0.0.0/24");
  EXPECT_FALSE(refused.admitted);
  EXPECT_NE(refused.refusal.find("10.0.0.0/24"), std::string::npos) << refused.refusal;
  // Another prefix is not affected.
  EXPECT_TRUE(admission.begin_handshake("10.0.1.0/24").admitted);
  // Ending one frees its slot; ending it twice changes nothing.
  admission.end_handshake(tickets[0]);
  admission.end_handshake(tickets[0]);
  EXPECT_EQ(admission.handshakes_from("10.0.0.0/24"), 2u);
  EXPECT_EQ(admission.handshakes(), 3u);
  EXPECT_TRUE(admission.begin_handshake("10.0.0.0/24").admitted);
}

TEST(Admission, FullTableEvictsTheOldestOfTheBusiestPrefix) {
  Admission admission(small_limits());  // 4 handshakes in all, 3 per prefix
  std::vector<Admission::Ticket> flood;
  for (int i = 0; i < 3; ++i) flood.push_back(admission.begin_handshake("10.0.0.0/24").ticket);
  const auto other = admission.begin_handshake("10.9.0.0/24");
  ASSERT_TRUE(other.admitted);
  EXPECT_EQ(admission.handshakes(), 4u);

  // A newcomer from a quiet prefix takes the flood's oldest slot.
  auto newcomer = admission.begin_handshake("192.168.1.0/24");
  ASSERT_TRUE(newcomer.admitted);
  ASSERT_TRUE(newcomer.evicted.has_value());
  EXPECT_EQ(*newcomer.evicted, flood[0]);
  EXPECT_EQ(admission.handshakes(), 4u);
  EXPECT_EQ(admission.handshakes_from("10.0.0.0/24"), 2u);
  // The aborted handshake ending later is harmless.
  admission.end_handshake(flood[0]);
  EXPECT_EQ(admission.handshakes(), 4u);

  // Now the biggest prefix has 2 and a prefix with 1 may not take from it: no
  // ping-pong between prefixes of equal weight.
  auto again = admission.begin_handshake("10.9.0.0/24");
  EXPECT_FALSE(again.admitted);
  // The flooding prefix itself never evicts its own.
  EXPECT_FALSE(admission.begin_handshake("10.0.0.0/24").admitted);
}

TEST(Admission, TotalConnectionsIncludeHandshakes) {
  ConnectionLimits limits = small_limits();
  limits.max_connections = 3;
  Admission admission(limits);
  EXPECT_TRUE(admission.add_connection(inbound(1)));
  EXPECT_TRUE(admission.add_connection(inbound(2)));
  auto handshake = admission.begin_handshake("10.0.0.0/24");
  ASSERT_TRUE(handshake.admitted);
  // Two connections and one handshake: the table is full before the key exchange.
  auto refused = admission.begin_handshake("10.0.1.0/24");
  EXPECT_FALSE(refused.admitted);
  EXPECT_NE(refused.refusal.find("connection limit"), std::string::npos) << refused.refusal;
  EXPECT_TRUE(admission.add_connection(inbound(3)));
  admission.end_handshake(handshake.ticket);
  std::string why;
  EXPECT_FALSE(admission.add_connection(inbound(4), &why));
  EXPECT_NE(why.find("connection limit"), std::string::npos) << why;
  // Outbound connections are this peer's choice: counted, never refused.
  EXPECT_TRUE(admission.add_connection({peer(4), "10.0.0.0/24", false}));
  EXPECT_EQ(admission.connections(), 4u);
  admission.remove_connection({peer(4), "10.0.0.0/24", false});
  admission.remove_connection(inbound(1));
  EXPECT_EQ(admission.connections(), 2u);
  EXPECT_TRUE(admission.begin_handshake("10.0.1.0/24").admitted);
}

TEST(Admission, ConnectionsPerIdentityAreCapped) {
  Admission admission(small_limits());  // 2 per peer
  EXPECT_TRUE(admission.peer_has_room(peer(7)));
  EXPECT_TRUE(admission.add_connection(inbound(7)));
  EXPECT_TRUE(admission.add_connection(inbound(7)));
  EXPECT_FALSE(admission.peer_has_room(peer(7)));
  std::string why;
  EXPECT_FALSE(admission.add_connection(inbound(7), &why));
  EXPECT_NE(why.find("from this peer"), std::string::npos) << why;
  EXPECT_EQ(admission.connections_of(peer(7)), 2u);
  // Others are not affected; closing one makes room again.
  EXPECT_TRUE(admission.add_connection(inbound(8)));
  admission.remove_connection(inbound(7));
  EXPECT_TRUE(admission.peer_has_room(peer(7)));
  // Removing an unknown peer changes nothing.
  admission.remove_connection(inbound(99));
  EXPECT_EQ(admission.connections(), 2u);
}

TEST(Admission, InboundConnectionsPerPrefixAreCapped) {
  ConnectionLimits limits = small_limits();
  limits.max_connections_per_prefix = 2;
  Admission admission(limits);
  EXPECT_TRUE(admission.add_connection(inbound(1, "10.0.0.0/24")));
  EXPECT_TRUE(admission.add_connection(inbound(2, "10.0.0.0/24")));
  std::string why;
  EXPECT_FALSE(admission.add_connection(inbound(3, "10.0.0.0/24"), &why));
  EXPECT_NE(why.find("10.0.0.0/24"), std::string::npos) << why;
  EXPECT_TRUE(admission.add_connection(inbound(3, "10.0.1.0/24")));
  // Outbound connections to that prefix are not limited by it.
  EXPECT_TRUE(admission.add_connection({peer(4), "10.0.0.0/24", false}));
  EXPECT_EQ(admission.inbound_connections_from("10.0.0.0/24"), 2u);
  admission.remove_connection(inbound(1, "10.0.0.0/24"));
  EXPECT_TRUE(admission.add_connection(inbound(5, "10.0.0.0/24")));
}

}  // namespace
}  // namespace apiary
