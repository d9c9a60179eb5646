// Matchmaking over an in-memory group key store: one group for all, leader
// election, rejection reasons, disbanding, client mode, and a full Averager
// round with the matchmaker as its group source.
#include "averaging/averager.hpp"
#include "averaging/join_wire.hpp"
#include "averaging/matchmaker.hpp"
#include "dht/swarm.hpp"
#include "tests/averaging/butterfly_fixture.hpp"

#include <gtest/gtest.h>

namespace apiary::averaging {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

struct MatchSwarm {
  test::Swarm swarm;
  std::shared_ptr<InMemoryGroupKeyStore> store = std::make_shared<InMemoryGroupKeyStore>();
  std::vector<std::unique_ptr<Matchmaker>> matchmakers;

  MatchSwarm(std::size_t count, MatchmakingOptions options,
             std::vector<std::size_t> sizes = {100}) {
    swarm.add_peers(count, sizes);
    for (auto& p : swarm.peers)
      matchmakers.push_back(std::make_unique<Matchmaker>(*p.node, store, options));
  }
  std::vector<std::future<std::optional<GroupInfo>>> find(std::vector<std::uint64_t> schemas,
                                                          std::chrono::milliseconds limit) {
    std::vector<std::future<std::optional<GroupInfo>>> futures;
    for (std::size_t i = 0; i < matchmakers.size(); ++i)
      futures.push_back(asio::co_spawn(
          swarm.ctx, matchmakers[i]->find_group(1.0f, schemas[i], Clock::now() + limit),
          asio::use_future));
    return futures;
  }
};

std::vector<PeerId> peers_of(const GroupInfo& g) {
  std::vector<PeerId> ids;
  for (const auto& m : g.members) ids.push_back(m.address.peer);
  return ids;
}

MatchmakingOptions fast(std::size_t target, std::size_t min = 2) {
  MatchmakingOptions o;
  o.target_group_size = target;
  o.min_group_size = min;
  o.matchmaking_time = 1500ms;  // generous: the test machine may be busy
  o.settle_time = 50ms;
  return o;
}

TEST(Matchmaker, FourPeersAgreeOnOneGroup) {
  MatchSwarm m(4, fast(4));
  const auto begin = Clock::now();
  auto futures = m.find({7, 7, 7, 7}, 5s);
  std::vector<GroupInfo> groups;
  for (auto& f : futures) {
    auto g = test::wait(m.swarm.ctx, f);
    ASSERT_TRUE(g.has_value());
    groups.push_back(*g);
  }
  EXPECT_LT(Clock::now() - begin, 1400ms);  // a full group starts before the time is up
  int leaders = 0;
  for (std::size_t i = 0; i < 4; ++i) {
    EXPECT_EQ(groups[i].members.size(), 4u);
    EXPECT_EQ(groups[i].group_id, groups[0].group_id);
    EXPECT_EQ(peers_of(groups[i]), peers_of(groups[0]));
    EXPECT_EQ(groups[i].schema_hash, 7u);
    leaders += m.matchmakers[i]->stats().led_last_round;
  }
  EXPECT_EQ(leaders, 1);
}

TEST(Matchmaker, BadSchemaIsRefusedAndTheRestAverage) {
  MatchSwarm m(3, fast(3));
  // Peer 0 declares first and leads (same declaration window, started first).
  auto futures = m.find({1, 1, 2}, 5s);
  std::vector<std::optional<GroupInfo>> groups;
  for (auto& f : futures) groups.push_back(test::wait(m.swarm.ctx, f));
  std::size_t formed = 0;
  for (std::size_t i = 0; i < 3; ++i) {
    if (!groups[i]) continue;
    ++formed;
    EXPECT_EQ(groups[i]->members.size(), 2u);
  }
  // Whoever has the odd schema is either refused by the leader or leads a
  // group nobody can join; in both cases it averages with nobody.
  EXPECT_FALSE(groups[2].has_value());
  const auto reason = m.matchmakers[2]->stats().last_rejection;
  EXPECT_TRUE(reason == JoinStatus::bad_schema || reason == JoinStatus::disbanded)
      << join_status_name(reason);
  EXPECT_EQ(formed, 2u);
}

TEST(Matchmaker, LoneLeaderDisbandsInTime) {
  MatchSwarm m(1, fast(4));
  const auto begin = Clock::now();
  auto futures = m.find({1}, 5s);
  EXPECT_FALSE(test::wait(m.swarm.ctx, futures[0]).has_value());
  EXPECT_LT(Clock::now() - begin, 3s);
  EXPECT_EQ(m.matchmakers[0]->stats().last_rejection, JoinStatus::disbanded);
}

TEST(Matchmaker, ClientModePeerJoinsOnlyAsFollower) {
  test::Swarm swarm;
  swarm.add_peers(3, {100});
  auto store = std::make_shared<InMemoryGroupKeyStore>();
  std::vector<std::unique_ptr<Matchmaker>> mm;
  for (std::size_t i = 0; i < 3; ++i) {
    auto o = fast(3);
    o.client_mode = i == 0;  // starts first, but may not lead
    mm.push_back(std::make_unique<Matchmaker>(*swarm.peers[i].node, store, o));
  }
  std::vector<std::future<std::optional<GroupInfo>>> futures;
  for (auto& m : mm)
    futures.push_back(
        asio::co_spawn(swarm.ctx, m->find_group(1.0f, 5, Clock::now() + 5s), asio::use_future));
  for (auto& f : futures) {
    auto g = test::wait(swarm.ctx, f);
    ASSERT_TRUE(g.has_value());
    ASSERT_EQ(g->members.size(), 3u);
    for (const auto& member : g->members)
      if (member.address.peer == swarm.peers[0].node->peer_id()) {
        EXPECT_EQ(member.bandwidth, 0.0);
      }
  }
  EXPECT_FALSE(mm[0]->stats().led_last_round);
}

TEST(Matchmaker, FollowerPointsToItsLeader) {
  MatchSwarm m(3, fast(3));
  // Peers 0 and 1 look for a group; peer 2 speaks the join protocol by hand.
  std::vector<std::future<std::optional<GroupInfo>>> futures;
  for (std::size_t i = 0; i < 2; ++i)
    futures.push_back(asio::co_spawn(
        m.swarm.ctx, m.matchmakers[i]->find_group(1.0f, 3, Clock::now() + 5s), asio::use_future));
  auto by_hand = [](rpc::RpcNode& me, PeerAddress a,
                    PeerAddress b) -> asio::awaitable<std::string> {
    co_await test::sleep_for(150ms);  // both settled: one leads, one follows
    JoinRequest join{"run/0", 3, 1.0, false, false};
    Bytes request = encode_join(join);
    std::string statuses;
    for (const auto& to : {a, b}) {
      auto response = co_await me.call(to, kJoinMethod, request);
      statuses += std::to_string(static_cast<int>(decode_response(response).status));
    }
    co_return statuses;
  };
  auto statuses =
      asio::co_spawn(m.swarm.ctx,
                     by_hand(*m.swarm.peers[2].node, m.swarm.peers[0].node->local_address(),
                             m.swarm.peers[1].node->local_address()),
                     asio::use_future);
  const std::string s = test::wait(m.swarm.ctx, statuses);
  // One of the two answers "not a leader" (1), the leader accepts (0) once
  // the group is full (the hand-made join completes it).
  EXPECT_TRUE(s == "10" || s == "01") << s;
  for (auto& f : futures) {
    auto g = test::wait(m.swarm.ctx, f);
    ASSERT_TRUE(g.has_value());
    EXPECT_EQ(g->members.size(), 3u);
  }
}

TEST(Matchmaker, AveragerRoundThroughMatchmaking) {
  test::Swarm swarm;
  swarm.add_peers(4, {5000});
  for (auto& p : swarm.peers) p.service.reset();
  auto store = std::make_shared<InMemoryGroupKeyStore>();
  std::vector<double> mean(5000, 0.0);
  for (auto& p : swarm.peers)
    for (std::size_t k = 0; k < mean.size(); ++k) mean[k] += p.tensors[0][k] / 4.0;
  std::vector<std::unique_ptr<Averager>> averagers;
  for (auto& p : swarm.peers) {
    averagers.push_back(
        std::make_unique<Averager>(*p.node, std::vector<std::span<float>>{p.tensors[0]},
                                   std::make_unique<Matchmaker>(*p.node, store, fast(4))));
  }
  std::vector<std::future<StepResult>> futures;
  for (auto& a : averagers)
    futures.push_back(
        asio::co_spawn(swarm.ctx, a->step_async(1.0f, Clock::now() + 5s), asio::use_future));
  for (auto& f : futures) {
    const auto r = test::wait(swarm.ctx, f);
    EXPECT_EQ(r.group_size, 4u);
    EXPECT_TRUE(r.failed_peers.empty());
  }
  for (auto& p : swarm.peers)
    for (std::size_t k = 0; k < mean.size(); ++k) ASSERT_NEAR(p.tensors[0][k], mean[k], 1e-5);
}

}  // namespace
}  // namespace apiary::averaging

namespace apiary::averaging {
namespace {

TEST(Matchmaker, FourPeersAgreeThroughARealDht) {
  test::Swarm swarm;  // its context and network; the peers are DHT nodes
  dht::LocalSwarm dht_swarm(swarm.ctx.get_executor(), dht::LocalSwarm::inproc(swarm.network));
  auto grown = asio::co_spawn(swarm.ctx, dht_swarm.grow(8), asio::use_future);
  test::wait(swarm.ctx, grown);
  std::vector<std::unique_ptr<Matchmaker>> mm;
  for (std::size_t i = 0; i < 4; ++i) {
    auto options = fast(4);
    options.matchmaking_time = 1500ms;
    options.settle_time = 300ms;
    // Declarations are signed by the DHT node: match on its own RPC node (its identity).
    mm.push_back(std::make_unique<Matchmaker>(
        dht_swarm.node(i * 2)->rpc(), std::make_shared<DhtGroupKeyStore>(dht_swarm.node(i * 2)),
        options));
  }
  std::vector<std::future<std::optional<GroupInfo>>> futures;
  for (auto& m : mm)
    futures.push_back(
        asio::co_spawn(swarm.ctx, m->find_group(1.0f, 9, Clock::now() + 5s), asio::use_future));
  std::vector<GroupInfo> groups;
  for (auto& f : futures) {
    auto g = test::wait(swarm.ctx, f);
    ASSERT_TRUE(g.has_value());
    groups.push_back(*g);
  }
  for (const auto& g : groups) {
    EXPECT_EQ(g.members.size(), 4u);
    EXPECT_EQ(g.group_id, groups[0].group_id);
  }
  dht_swarm.stop();
}

}  // namespace
}  // namespace apiary::averaging

namespace apiary::averaging {
namespace {

TEST(Matchmaker, MoshpitGridKeysReachTheGlobalMeanInTwoRounds) {
  test::Swarm swarm;
  swarm.add_peers(16, {3000});
  for (auto& p : swarm.peers) p.service.reset();
  auto store = std::make_shared<InMemoryGroupKeyStore>();
  std::vector<double> mean(3000, 0.0);
  for (auto& p : swarm.peers)
    for (std::size_t k = 0; k < mean.size(); ++k) mean[k] += p.tensors[0][k] / 16.0;
  std::vector<std::unique_ptr<Averager>> averagers;
  for (std::size_t i = 0; i < 16; ++i) {
    auto options = fast(4);
    options.key_suffix = moshpit_suffix(i / 4, i % 4);
    averagers.push_back(std::make_unique<Averager>(
        *swarm.peers[i].node, std::vector<std::span<float>>{swarm.peers[i].tensors[0]},
        std::make_unique<Matchmaker>(*swarm.peers[i].node, store, options)));
  }
  for (int round = 0; round < 2; ++round) {
    std::vector<std::future<StepResult>> futures;
    for (auto& a : averagers)
      futures.push_back(
          asio::co_spawn(swarm.ctx, a->step_async(1.0f, Clock::now() + 5s), asio::use_future));
    for (auto& f : futures) EXPECT_EQ(test::wait(swarm.ctx, f).group_size, 4u);
  }
  for (auto& p : swarm.peers)
    for (std::size_t k = 0; k < mean.size(); ++k) ASSERT_NEAR(p.tensors[0][k], mean[k], 1e-4);
}

// A store that lags like a busy DHT: its list() answers `delay` late, and
// its first list() misses the declarations `missed_at_first` picks (not
// delivered yet), so its peer may decide to lead, or follow, the wrong peer.
class LaggingStore final : public GroupKeyStore {
 public:
  using Filter = std::function<bool(const Declaration&)>;
  LaggingStore(std::shared_ptr<GroupKeyStore> inner, std::chrono::milliseconds delay,
               Filter missed_at_first = {})
      : inner_(std::move(inner)), delay_(delay), missed_at_first_(std::move(missed_at_first)) {}
  asio::awaitable<bool> declare(std::string key, Declaration declaration) override {
    co_return co_await inner_->declare(std::move(key), std::move(declaration));
  }
  asio::awaitable<std::vector<Declaration>> list(std::string key, double now) override {
    co_await test::sleep_for(delay_);
    auto listed = co_await inner_->list(std::move(key), now);
    if (missed_at_first_ && lists_++ == 0) std::erase_if(listed, missed_at_first_);
    co_return listed;
  }

 private:
  std::shared_ptr<GroupKeyStore> inner_;
  std::chrono::milliseconds delay_;
  Filter missed_at_first_;
  int lists_ = 0;
};

LaggingStore::Filter everyone() {
  return [](const Declaration&) { return true; };
}

TEST(Matchmaker, AJoinWhileTheLeaderStillDecidesWaitsForItsDecision) {
  test::Swarm swarm;
  swarm.add_peers(2, {100});
  auto shared = std::make_shared<InMemoryGroupKeyStore>();
  // Peer 0 declares first (it leads) but lists 400 ms late; peer 1 joins it long before.
  Matchmaker leader(*swarm.peers[0].node, std::make_shared<LaggingStore>(shared, 400ms), fast(2));
  Matchmaker follower(*swarm.peers[1].node, shared, fast(2));
  auto first =
      asio::co_spawn(swarm.ctx, leader.find_group(1.0f, 7, Clock::now() + 5s), asio::use_future);
  auto second = asio::co_spawn(
      swarm.ctx,
      [&]() -> asio::awaitable<std::optional<GroupInfo>> {
        co_await test::sleep_for(20ms);  // declares after the leader
        co_return co_await follower.find_group(1.0f, 7, Clock::now() + 5s);
      },
      asio::use_future);
  auto led = test::wait(swarm.ctx, first);
  auto joined = test::wait(swarm.ctx, second);
  ASSERT_TRUE(led.has_value());
  ASSERT_TRUE(joined.has_value()) << "refused: "
                                  << join_status_name(follower.stats().last_rejection);
  EXPECT_TRUE(leader.stats().led_last_round);
  EXPECT_EQ(peers_of(*joined), peers_of(*led));
  EXPECT_EQ(led->members.size(), 2u);
}

// A group matched ahead of time: it forms while its members still compute,
// and starts only when its leader is released — with everyone who joined,
// even after the matchmaking time is over.
TEST(Matchmaker, HeldGroupStartsWhenReleased) {
  auto options = fast(3);
  options.matchmaking_time = 300ms;
  options.hold_until_released = true;
  MatchSwarm m(3, options);
  auto futures = m.find({7, 7, 7}, 5s);
  Clock::time_point released_at;
  auto releaser = asio::co_spawn(
      m.swarm.ctx,
      [&]() -> asio::awaitable<void> {
        co_await test::sleep_for(700ms);
        released_at = Clock::now();
        for (auto& mm : m.matchmakers) mm->release();
      },
      asio::use_future);
  std::vector<GroupInfo> groups;
  for (auto& f : futures) {
    auto g = test::wait(m.swarm.ctx, f);
    ASSERT_TRUE(g.has_value());
    EXPECT_NE(released_at, Clock::time_point{});  // nobody started before the release
    groups.push_back(*g);
  }
  test::wait(m.swarm.ctx, releaser);
  for (const auto& g : groups) {
    EXPECT_EQ(g.members.size(), 3u);
    EXPECT_EQ(g.group_id, groups[0].group_id);
  }
}

TEST(Matchmaker, AbandonedHeldGroupDisbands) {
  auto options = fast(2);
  options.hold_until_released = true;
  MatchSwarm m(2, options);
  const auto begin = Clock::now();
  auto futures = m.find({7, 7}, 10s);
  auto abandoner = asio::co_spawn(
      m.swarm.ctx,
      [&]() -> asio::awaitable<void> {
        co_await test::sleep_for(400ms);
        for (auto& mm : m.matchmakers) mm->abandon();
      },
      asio::use_future);
  for (auto& f : futures) EXPECT_FALSE(test::wait(m.swarm.ctx, f).has_value());
  test::wait(m.swarm.ctx, abandoner);
  EXPECT_LT(Clock::now() - begin, 5s);  // not the 10 s deadline
}

// Two rounds match at once on the same nodes (one JoinService per node):
// join requests reach the matchmaker of their own key.
TEST(Matchmaker, TwoRoundsMatchAtOnceThroughOneJoinService) {
  test::Swarm swarm;
  swarm.add_peers(2, {100});
  auto store = std::make_shared<InMemoryGroupKeyStore>();
  std::vector<std::unique_ptr<Matchmaker>> mm;
  for (auto& p : swarm.peers) {
    auto joins = std::make_shared<JoinService>(*p.node);
    for (const char* prefix : {"grad", "state"}) {
      auto o = fast(2);
      o.prefix = prefix;
      mm.push_back(std::make_unique<Matchmaker>(*p.node, store, o, joins));
    }
  }
  std::vector<std::future<std::optional<GroupInfo>>> futures;
  for (auto& m : mm)
    futures.push_back(
        asio::co_spawn(swarm.ctx, m->find_group(1.0f, 3, Clock::now() + 5s), asio::use_future));
  for (auto& f : futures) {
    auto g = test::wait(swarm.ctx, f);
    ASSERT_TRUE(g.has_value());
    EXPECT_EQ(g->members.size(), 2u);
  }
}

// Matched ahead of time, a peer that wrongly decided to lead (its DHT view
// was late) looks again while alone, finds the earlier declaration and
// follows it: one group, not two leaders each waiting alone.
TEST(Matchmaker, HeldLeaderAloneFollowsAnEarlierDeclarationFoundLater) {
  test::Swarm swarm;
  swarm.add_peers(2, {100});
  auto shared = std::make_shared<InMemoryGroupKeyStore>();
  auto options = fast(2);
  options.hold_until_released = true;
  Matchmaker first(*swarm.peers[0].node, shared, options);
  Matchmaker second(*swarm.peers[1].node, std::make_shared<LaggingStore>(shared, 0ms, everyone()),
                    options);
  auto led =
      asio::co_spawn(swarm.ctx, first.find_group(1.0f, 7, Clock::now() + 5s), asio::use_future);
  auto followed = asio::co_spawn(
      swarm.ctx,
      [&]() -> asio::awaitable<std::optional<GroupInfo>> {
        co_await test::sleep_for(20ms);  // declares after the first
        co_return co_await second.find_group(1.0f, 7, Clock::now() + 5s);
      },
      asio::use_future);
  auto releaser = asio::co_spawn(
      swarm.ctx,
      [&]() -> asio::awaitable<void> {
        co_await test::sleep_for(600ms);  // both would wait alone by now without the re-look
        first.release();
        second.release();
      },
      asio::use_future);
  auto a = test::wait(swarm.ctx, led);
  auto b = test::wait(swarm.ctx, followed);
  test::wait(swarm.ctx, releaser);
  ASSERT_TRUE(a.has_value());
  ASSERT_TRUE(b.has_value());
  EXPECT_EQ(a->members.size(), 2u);
  EXPECT_EQ(b->group_id, a->group_id);
  EXPECT_TRUE(first.stats().led_last_round);
  EXPECT_FALSE(second.stats().led_last_round);
}

// Released while nobody joined it, a held leader gives up after the release
// grace instead of waiting out its whole matchmaking window.
TEST(Matchmaker, HeldLeaderReleasedAloneGivesUpAfterTheGrace) {
  auto options = fast(2);
  options.hold_until_released = true;
  options.matchmaking_time = 10s;
  options.release_grace = 200ms;
  MatchSwarm m(1, options);
  auto futures = m.find({7}, 10s);
  Clock::time_point released_at;
  auto releaser = asio::co_spawn(
      m.swarm.ctx,
      [&]() -> asio::awaitable<void> {
        co_await test::sleep_for(300ms);
        released_at = Clock::now();
        m.matchmakers[0]->release();
      },
      asio::use_future);
  EXPECT_FALSE(test::wait(m.swarm.ctx, futures[0]).has_value());
  test::wait(m.swarm.ctx, releaser);
  EXPECT_LT(Clock::now() - released_at, 2s);
}

// Two leaders, one with a follower: the later one (its DHT view was late)
// finds the earlier declaration, sends its follower there and follows too —
// one group of three, not {first} and {second, third}.
TEST(Matchmaker, HeldLeaderWithFollowersRedirectsThemToAnEarlierLeader) {
  test::Swarm swarm;
  swarm.add_peers(3, {100});
  auto shared = std::make_shared<InMemoryGroupKeyStore>();
  auto options = fast(3);
  options.hold_until_released = true;
  const PeerId first_peer = swarm.peers[0].node->local_address().peer;
  Matchmaker first(*swarm.peers[0].node, shared, options);
  Matchmaker second(*swarm.peers[1].node, std::make_shared<LaggingStore>(shared, 0ms, everyone()),
                    options);
  Matchmaker third(
      *swarm.peers[2].node,
      std::make_shared<LaggingStore>(
          shared, 0ms, [first_peer](const Declaration& d) { return d.address.peer == first_peer; }),
      options);
  std::vector<std::future<std::optional<GroupInfo>>> futures;
  futures.push_back(
      asio::co_spawn(swarm.ctx, first.find_group(1.0f, 7, Clock::now() + 5s), asio::use_future));
  for (auto* m : {&second, &third}) {
    const auto delay = m == &second ? 20ms : 40ms;  // declare in this order
    futures.push_back(asio::co_spawn(
        swarm.ctx,
        [m, delay]() -> asio::awaitable<std::optional<GroupInfo>> {
          co_await test::sleep_for(delay);
          co_return co_await m->find_group(1.0f, 7, Clock::now() + 5s);
        },
        asio::use_future));
  }
  auto releaser = asio::co_spawn(
      swarm.ctx,
      [&]() -> asio::awaitable<void> {
        co_await test::sleep_for(700ms);
        for (auto* m : {&first, &second, &third}) m->release();
      },
      asio::use_future);
  std::vector<GroupInfo> groups;
  for (auto& f : futures) {
    auto g = test::wait(swarm.ctx, f);
    ASSERT_TRUE(g.has_value());
    groups.push_back(*g);
  }
  test::wait(swarm.ctx, releaser);
  for (const auto& g : groups) {
    EXPECT_EQ(g.members.size(), 3u);
    EXPECT_EQ(g.group_id, groups[0].group_id);
  }
  EXPECT_TRUE(first.stats().led_last_round);
  EXPECT_FALSE(second.stats().led_last_round);
}

}  // namespace
}  // namespace apiary::averaging
