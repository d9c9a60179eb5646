#include "dht/blacklist.hpp"

#include <gtest/gtest.h>

using namespace apiary;
using namespace apiary::dht;
using namespace std::chrono_literals;

TEST(DhtBlacklist, ExponentialBackoffAndReset) {
  Blacklist list(100ms, 2.0, 1000ms);
  PeerId peer;
  peer.bytes[0] = 7;
  const auto t = Blacklist::Clock::time_point{} + 1h;
  EXPECT_FALSE(list.is_banned(peer, t));
  list.register_failure(peer, t);
  EXPECT_TRUE(list.is_banned(peer, t + 99ms));
  EXPECT_FALSE(list.is_banned(peer, t + 100ms));
  list.register_failure(peer, t + 50ms);  // still banned: no escalation
  EXPECT_FALSE(list.is_banned(peer, t + 101ms));
  list.register_failure(peer, t + 200ms);  // second failure: 200 ms
  EXPECT_TRUE(list.is_banned(peer, t + 399ms));
  EXPECT_FALSE(list.is_banned(peer, t + 400ms));
  for (int i = 0; i < 10; ++i) list.register_failure(peer, t + 10s * (i + 1));
  EXPECT_EQ(list.remaining(peer, t + 100s), 1000ms);  // capped
  list.register_success(peer);
  EXPECT_FALSE(list.is_banned(peer, t + 100s));
}
