// MatchmakingState without sockets or sleeps: a fake clock and hand-fed
// declarations, join requests and answers.
#include "averaging/matchmaking_state.hpp"

#include <gtest/gtest.h>

#include <chrono>

namespace apiary::averaging {
namespace {

using namespace std::chrono_literals;
using Kind = MatchAction::Kind;

PeerAddress peer(std::uint8_t n) {
  PeerAddress address;
  address.peer.bytes.fill(n);
  address.host = "10.0.0." + std::to_string(n);
  address.port = 7000;
  return address;
}

MatchmakingOptions fast(std::size_t target) {
  MatchmakingOptions o;
  o.target_group_size = target;
  o.min_group_size = 2;
  o.matchmaking_time = 1000ms;
  o.settle_time = 100ms;
  return o;
}

JoinRequest join_request(std::uint64_t schema = 42) {
  return {"run/0", schema, 1.0, false, false};
}

// One peer's state machine and the fake time it sees.
struct Peer {
  Peer(MatchmakingOptions options, PeerAddress address_)
      : machine(std::move(options)), address(std::move(address_)) {}
  MatchmakingState machine;
  PeerAddress address;
  ManualClock clock;
  MatchTime now() const { return {clock.now(), clock.wall_now()}; }
  void advance(SteadyClock::duration by) { clock.advance(by); }
  Deadline in(SteadyClock::duration by) const { return clock.now() + by; }

  // begin → declare → settle → list: what it does once it has seen `others`.
  MatchAction decide(std::vector<Declaration> others, Deadline deadline) {
    machine.begin("run/0", address, 2.0f, 42, deadline, now());
    EXPECT_EQ(machine.next(now()).kind, Kind::declare);
    machine.on_declared(now());
    const MatchAction settle = machine.next(now());
    EXPECT_EQ(settle.kind, Kind::wait);
    EXPECT_EQ(settle.until, in(100ms));
    advance(100ms);
    EXPECT_EQ(machine.next(now()).kind, Kind::list);
    machine.on_listed(std::move(others), now());
    return machine.next(now());
  }
  Declaration declaration(double offset = 1.0) const {
    return {address, clock.wall_now() + offset};
  }
  // Leads (nobody declared earlier) and admits `follower`, whose join then long-polls.
  JoinTicket lead_and_admit(const PeerAddress& follower) {
    EXPECT_EQ(decide({}, in(10s)).kind, Kind::wait);
    JoinTicket ticket = machine.open_join(join_request(), follower.peer, follower, now());
    EXPECT_FALSE(machine.join_verdict(ticket, now()).answer);
    EXPECT_TRUE(ticket.admitted);
    return ticket;
  }
};

TEST(MatchmakingState, DeclaresSettlesThenListsWithoutAnyClockRunning) {
  Peer p(fast(3), peer(1));
  p.machine.begin("run/0", p.address, 1.0f, 42, p.in(5s), p.now());
  EXPECT_TRUE(p.machine.handles("run/0"));  // deciding
  const MatchAction declare = p.machine.next(p.now());
  ASSERT_EQ(declare.kind, Kind::declare);
  EXPECT_EQ(declare.key, "run/0");
  EXPECT_EQ(declare.declaration.address, p.address);
  EXPECT_DOUBLE_EQ(declare.declaration.expiration, p.clock.wall_now() + 1.0);
  p.machine.on_declared(p.now());
  EXPECT_EQ(p.machine.next(p.now()).kind, Kind::wait);
  p.advance(99ms);
  EXPECT_EQ(p.machine.next(p.now()).kind, Kind::wait);
  p.advance(1ms);
  EXPECT_EQ(p.machine.next(p.now()).kind, Kind::list);
}

TEST(MatchmakingState, LeaderAloneDisbandsWhenItsTimeIsUp) {
  Peer p(fast(3), peer(1));
  MatchAction action = p.decide({}, p.in(10s));
  ASSERT_EQ(action.kind, Kind::wait);  // gathering
  EXPECT_TRUE(p.machine.stats().led_last_round);
  p.advance(899ms);  // the declaration ends 1 s after begin; 100 ms went to settling
  EXPECT_EQ(p.machine.next(p.now()).kind, Kind::wait);
  p.advance(1ms);
  action = p.machine.next(p.now());
  ASSERT_EQ(action.kind, Kind::finish);
  EXPECT_FALSE(action.group);
  EXPECT_EQ(p.machine.stats().last_rejection, JoinStatus::disbanded);
  EXPECT_FALSE(p.machine.handles("other"));
}

TEST(MatchmakingState, LeaderStartsWhenFullAndAnswersItsFollowers) {
  Peer leader(fast(3), peer(1));
  ASSERT_EQ(
      leader.decide({leader.declaration(), {peer(2), leader.clock.wall_now() + 5}}, leader.in(10s))
          .kind,
      Kind::wait);
  EXPECT_TRUE(leader.machine.take_changed());
  auto first = leader.machine.open_join(join_request(), peer(2).peer, peer(2), leader.now());
  JoinVerdict verdict = leader.machine.join_verdict(first, leader.now());
  EXPECT_FALSE(verdict.answer);  // admitted: long poll until the start
  EXPECT_TRUE(first.admitted);
  EXPECT_TRUE(leader.machine.take_changed());
  EXPECT_EQ(leader.machine.next(leader.now()).kind, Kind::wait);  // 2 of 3

  // Refusals: wrong schema, a second join of the same peer.
  auto wrong = leader.machine.open_join(join_request(7), peer(4).peer, peer(4), leader.now());
  EXPECT_EQ(leader.machine.join_verdict(wrong, leader.now()).answer->status,
            JoinStatus::bad_schema);
  auto again = leader.machine.open_join(join_request(), peer(2).peer, peer(2), leader.now());
  EXPECT_EQ(leader.machine.join_verdict(again, leader.now()).answer->status, JoinStatus::duplicate);

  auto second = leader.machine.open_join(join_request(), peer(3).peer, std::nullopt, leader.now());
  EXPECT_FALSE(leader.machine.join_verdict(second, leader.now()).answer);
  const MatchAction done = leader.machine.next(leader.now());
  ASSERT_EQ(done.kind, Kind::finish);
  ASSERT_TRUE(done.group);
  ASSERT_EQ(done.group->members.size(), 3u);
  EXPECT_EQ(done.group->members[0].address, leader.address);
  EXPECT_FLOAT_EQ(done.group->members[0].weight, 2.0f);
  EXPECT_EQ(done.group->members[2].bandwidth, 0.0);  // no reply address: client mode

  const auto answer = leader.machine.join_verdict(first, leader.now()).answer;
  ASSERT_TRUE(answer);
  EXPECT_EQ(answer->status, JoinStatus::accepted);
  EXPECT_EQ(answer->group.members.size(), 3u);
  auto late = leader.machine.open_join(join_request(), peer(5).peer, peer(5), leader.now());
  EXPECT_EQ(leader.machine.join_verdict(late, leader.now()).answer->status, JoinStatus::expired);
}

TEST(MatchmakingState, JoinWaitsForTheDecisionThenIsSentToTheLeader) {
  Peer p(fast(3), peer(5));
  p.machine.begin("run/0", p.address, 1.0f, 42, p.in(10s), p.now());
  (void)p.machine.next(p.now());
  p.machine.on_declared(p.now());
  // A joiner that saw this peer's declaration before this peer decided waits.
  auto ticket = p.machine.open_join(join_request(), peer(9).peer, peer(9), p.now());
  JoinVerdict verdict = p.machine.join_verdict(ticket, p.now());
  EXPECT_FALSE(verdict.answer);
  EXPECT_EQ(verdict.wake, p.in(2s));
  p.advance(100ms);
  ASSERT_EQ(p.machine.next(p.now()).kind, Kind::list);
  p.machine.on_listed({p.declaration(), {peer(1), p.clock.wall_now() - 0.5}}, p.now());
  const MatchAction join = p.machine.next(p.now());
  ASSERT_EQ(join.kind, Kind::join);
  EXPECT_EQ(join.leader, peer(1));
  EXPECT_EQ(join.request.group_key, "run/0");
  EXPECT_EQ(join.until, p.in(9900ms));
  // Decided to follow: the waiting joiner is pointed at the leader.
  const auto answer = p.machine.join_verdict(ticket, p.now()).answer;
  ASSERT_TRUE(answer);
  EXPECT_EQ(answer->status, JoinStatus::not_a_leader);
  EXPECT_EQ(answer->hint, peer(1));
}

TEST(MatchmakingState, FollowerFollowsHintsAndKeepsItsOwnWeight) {
  Peer p(fast(3), peer(5));
  ASSERT_EQ(p.decide({{peer(1), p.clock.wall_now()}}, p.in(10s)).kind, Kind::join);
  JoinResponse redirect;
  redirect.status = JoinStatus::not_a_leader;
  redirect.hint = peer(2);
  p.machine.on_join_answer(redirect);
  EXPECT_EQ(p.machine.stats().last_rejection, JoinStatus::not_a_leader);
  const MatchAction retry = p.machine.next(p.now());
  ASSERT_EQ(retry.kind, Kind::join);
  EXPECT_EQ(retry.leader, peer(2));
  JoinResponse accepted;
  accepted.status = JoinStatus::accepted;
  accepted.group.group_id = {1, 2, 3};
  accepted.group.schema_hash = 42;
  accepted.group.members = {{peer(2), 1.0f, 1.0, false}, {p.address, 1.0f, 1.0, false}};
  p.machine.on_join_answer(accepted);
  const MatchAction done = p.machine.next(p.now());
  ASSERT_EQ(done.kind, Kind::finish);
  ASSERT_TRUE(done.group);
  EXPECT_FLOAT_EQ(done.group->members[1].weight, 2.0f);
}

TEST(MatchmakingState, FollowerGivesUpOnARefusalOrAHintBackToItself) {
  Peer p(fast(3), peer(5));
  ASSERT_EQ(p.decide({{peer(1), p.clock.wall_now()}}, p.in(10s)).kind, Kind::join);
  JoinResponse loop;
  loop.status = JoinStatus::not_a_leader;
  loop.hint = p.address;
  p.machine.on_join_answer(loop);
  const MatchAction done = p.machine.next(p.now());
  ASSERT_EQ(done.kind, Kind::finish);
  EXPECT_FALSE(done.group);

  Peer q(fast(3), peer(6));
  ASSERT_EQ(q.decide({{peer(1), q.clock.wall_now()}}, q.in(10s)).kind, Kind::join);
  q.machine.on_join_failed();
  EXPECT_EQ(q.machine.next(q.now()).kind, Kind::finish);
}

TEST(MatchmakingState, HeldGroupStartsOnlyAtReleaseAfterTheGrace) {
  auto options = fast(4);
  options.hold_until_released = true;
  options.expected_group_size = 3;
  options.release_grace = 300ms;
  Peer leader(options, peer(1));
  auto ticket = leader.lead_and_admit(peer(2));
  // Held: looks at the declarations again every 2 × settle time, finds no earlier leader.
  leader.advance(200ms);
  ASSERT_EQ(leader.machine.next(leader.now()).kind, Kind::list);
  leader.machine.on_listed({leader.declaration(0.7)}, leader.now());
  EXPECT_EQ(leader.machine.next(leader.now()).kind, Kind::wait);
  // The hold outlives the matchmaking time: the follower's long poll too.
  leader.advance(2s);
  EXPECT_NE(leader.machine.next(leader.now()).kind, Kind::finish);
  EXPECT_FALSE(leader.machine.join_verdict(ticket, leader.now()).answer);
  leader.machine.release();
  // Released with 2 of the 3 expected: waits the grace, then starts.
  EXPECT_EQ(leader.machine.next(leader.now()).kind, Kind::wait);
  leader.advance(300ms);
  const MatchAction done = leader.machine.next(leader.now());
  ASSERT_EQ(done.kind, Kind::finish);
  ASSERT_TRUE(done.group);
  EXPECT_EQ(done.group->members.size(), 2u);
  EXPECT_EQ(leader.machine.join_verdict(ticket, leader.now()).answer->status, JoinStatus::accepted);
}

TEST(MatchmakingState, AbandonedHeldGroupDisbandsItsFollowers) {
  auto options = fast(4);
  options.hold_until_released = true;
  Peer leader(options, peer(1));
  auto ticket = leader.lead_and_admit(peer(2));
  leader.machine.abandon();
  const MatchAction done = leader.machine.next(leader.now());
  ASSERT_EQ(done.kind, Kind::finish);
  EXPECT_FALSE(done.group);
  EXPECT_EQ(leader.machine.join_verdict(ticket, leader.now()).answer->status,
            JoinStatus::disbanded);
}

TEST(MatchmakingState, HeldLeaderThatFindsAnEarlierLeaderRedirectsItsFollowers) {
  auto options = fast(4);
  options.hold_until_released = true;
  Peer leader(options, peer(5));
  auto ticket = leader.lead_and_admit(peer(7));
  leader.advance(200ms);
  ASSERT_EQ(leader.machine.next(leader.now()).kind, Kind::list);
  leader.machine.on_listed({leader.declaration(0.7), {peer(1), leader.clock.wall_now()}},
                           leader.now());
  EXPECT_FALSE(leader.machine.stats().led_last_round);
  const MatchAction join = leader.machine.next(leader.now());
  ASSERT_EQ(join.kind, Kind::join);
  EXPECT_EQ(join.leader, peer(1));
  const auto answer = leader.machine.join_verdict(ticket, leader.now()).answer;
  ASSERT_TRUE(answer);
  EXPECT_EQ(answer->status, JoinStatus::not_a_leader);
  EXPECT_EQ(answer->hint, peer(1));
}

TEST(MatchmakingState, ClientNeverDeclaresAndAloneFindsNoGroup) {
  auto options = fast(3);
  options.client_mode = true;
  Peer client(options, peer(3));
  client.machine.begin("run/0", client.address, 1.0f, 42, client.in(5s), client.now());
  EXPECT_FALSE(client.machine.handles("run/0"));
  EXPECT_EQ(client.machine.next(client.now()).kind, Kind::wait);  // settling, no declaration
  client.advance(100ms);
  ASSERT_EQ(client.machine.next(client.now()).kind, Kind::list);
  client.machine.on_listed({}, client.now());
  const MatchAction done = client.machine.next(client.now());
  ASSERT_EQ(done.kind, Kind::finish);
  EXPECT_FALSE(done.group);
}

}  // namespace
}  // namespace apiary::averaging
