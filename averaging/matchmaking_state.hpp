#pragma once
// Matchmaking as a state machine without I/O (like net/handshake): it is fed
// what the network and the clock say and answers with what to do next.
// Matchmaker (matchmaker.hpp) drives it over a GroupKeyStore and RPC; tests
// drive it with a fake clock, no sockets and no sleeps.
//
// This peer's round (find_group):
//   begin() → next() says declare → on_declared() → next() waits out the
//   settle time, then says list → on_listed(): the earliest declaration
//   (ties: smaller peer id) leads.
//   Leading: next() waits for joins (open_join/join_verdict) until the group
//   is full, the matchmaking time is up, or — held (hold_until_released) —
//   until release(); a held leader lists the key again now and then and
//   follows an earlier leader it finds (its followers are told to go there).
//   Following: next() says join (leader, request); on_join_answer() follows
//   not_a_leader hints (at most 4 attempts) or finishes.
//   next() says finish (with the group, or nullopt) when the round is over.
// Other peers' joins (this peer's JoinService): open_join() then
// join_verdict() until it holds an answer; in between, wait until `wake` or
// the next change (a join that waits while this peer decides, or a long poll
// until the leader starts the group).
// Time is an input everywhere (MatchTime: steady and wall at one instant).
// Errors: none thrown; misuse (inputs in the wrong phase) is ignored.
#include "averaging/group_key_store.hpp"
#include "averaging/join_wire.hpp"
#include "core/clock.hpp"

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace apiary::averaging {

struct MatchmakingOptions {
  std::string prefix = "run";
  std::size_t target_group_size = 4;
  std::size_t min_group_size = 2;
  std::chrono::milliseconds matchmaking_time{2000};
  std::chrono::milliseconds settle_time{200};  // wait for others' declarations to appear
  double bandwidth = 1.0;                      // announced to the leader
  bool client_mode = false;
  bool auxiliary = false;
  // Leading: keep the gathered group until release() (or the deadline);
  // released early, wait up to `release_grace` for `expected_group_size`
  // members (0: start at once with at least min_group_size).
  bool hold_until_released = false;
  std::size_t expected_group_size = 0;
  std::chrono::milliseconds release_grace{300};
  // Appended to the group key of round r, e.g. moshpit_suffix(): peers with
  // different suffixes form different groups (group rotation).
  std::function<std::string(std::uint64_t round)> key_suffix;
  // Wall time for declarations and their expirations; steady time for waits.
  Clock clock;
};

struct MatchmakingStats {
  JoinStatus last_rejection = JoinStatus::accepted;
  bool led_last_round = false;
};

struct MatchTime {
  Deadline steady;
  double wall = 0;  // seconds since the Unix epoch
};

struct MatchAction {
  enum class Kind { declare, list, join, wait, finish };
  Kind kind = Kind::wait;
  std::string key;                   // declare, list
  Declaration declaration;           // declare
  PeerAddress leader;                // join
  JoinRequest request;               // join
  Deadline until = Deadline::max();  // wait: until then (or a change); join: the call's deadline
  std::optional<GroupInfo> group;    // finish
};

// One join request from another peer, as the leader side tracks it.
struct JoinTicket {
  JoinRequest request;
  PeerId caller;
  std::optional<PeerAddress> reply_address;  // none: a client-mode caller
  Deadline decide_by{};                      // how long it waits for this peer's decision
  bool admitted = false;                     // in the group; long-polling for the start
  Deadline give_up{};                        // admitted: end of the long poll
};

struct JoinVerdict {
  std::optional<JoinResponse> answer;  // final; otherwise wait (until `wake` or a change)
  Deadline wake = Deadline::max();
};

class MatchmakingState {
 public:
  explicit MatchmakingState(MatchmakingOptions options);

  // Starts this peer's round under `key` (forgets the previous round); `self`
  // is the address this peer declares and the leader's first member.
  void begin(std::string key, PeerAddress self, float weight, std::uint64_t schema_hash,
             Deadline deadline, MatchTime now);
  MatchAction next(MatchTime now);
  void on_declared(MatchTime now);
  void on_listed(std::vector<Declaration> declarations, MatchTime now);
  void on_join_answer(JoinResponse response);
  void on_join_failed();
  // hold_until_released: this peer is ready. abandon: it will not average in this round.
  void release();
  void abandon();
  // However the round ends (also when its driver is torn down): not deciding any more.
  void stop_deciding();

  JoinTicket open_join(JoinRequest request, PeerId caller, std::optional<PeerAddress> reply_address,
                       MatchTime now) const;
  JoinVerdict join_verdict(JoinTicket& ticket, MatchTime now);

  // Whether this peer is busy with `key` (deciding, leading or following it).
  bool handles(const std::string& key) const;
  // True once after anything a waiter (join_verdict, next) depends on changed.
  bool take_changed() noexcept { return std::exchange(changed_, false); }
  const MatchmakingStats& stats() const noexcept { return stats_; }

 private:
  enum class Phase {
    idle,
    declare,
    declaring,
    settling,
    listing,
    gathering,
    looking,
    awaiting_release,
    release_grace,
    follow,
    joining,
    finished,
  };
  // redirected: another peer leads this key after all; joiners are sent there.
  enum class LeadPhase { open, started, disbanded, redirected };
  struct Leading {
    std::string group_key;
    std::uint64_t schema_hash = 0;
    double expires = 0;  // wall time
    LeadPhase phase = LeadPhase::open;
    GroupInfo group;  // leader first, then followers in join order
    // Held groups: followers' join requests wait for the start until then.
    std::optional<Deadline> hold_until;
    std::optional<PeerAddress> redirect;  // LeadPhase::redirected: the peer that leads
  };

  Declaration mine() const { return {self_, expires_}; }
  void decide(std::vector<Declaration> declarations, MatchTime now);
  void lead(MatchTime now);
  void follow(PeerAddress leader);
  MatchAction gather(MatchTime now);
  MatchAction end_gathering(MatchTime now);
  MatchAction await_release(MatchTime now);
  MatchAction start_group();
  MatchAction disband();
  MatchAction finish(std::optional<GroupInfo> group);
  JoinVerdict admit(JoinTicket& ticket, MatchTime now);
  void mark_changed() noexcept { changed_ = true; }

  MatchmakingOptions options_;
  PeerAddress self_;
  Phase phase_ = Phase::idle;
  std::string key_;
  float weight_ = 1.0f;
  std::uint64_t schema_hash_ = 0;
  Deadline deadline_{};
  double expires_ = 0;  // wall time of this peer's declaration's end
  Deadline settle_end_{};
  MatchmakingStats stats_;

  std::optional<Leading> leading_;
  std::string deciding_key_;  // declared under it, not yet decided whether to lead
  Deadline stop_{};           // leading: gather until then
  Deadline next_look_{};
  std::optional<Deadline> released_alone_until_;
  Deadline grace_end_{};
  std::string following_key_;
  std::optional<PeerAddress> following_;
  int join_attempts_ = 0;
  std::optional<GroupInfo> result_;
  bool released_ = false;
  bool abandoned_ = false;
  bool changed_ = false;
};

}  // namespace apiary::averaging
