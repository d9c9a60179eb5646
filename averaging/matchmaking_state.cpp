#include "averaging/matchmaking_state.hpp"

#include "core/hash.hpp"
#include "core/log.hpp"

#include <algorithm>
#include <tuple>

namespace apiary::averaging {
namespace {

constexpr int kMaxJoinAttempts = 4;
// A joiner may see this peer's declaration before this peer has listed the
// others and decided to lead: it waits this long for the decision.
constexpr auto kDecisionWait = std::chrono::seconds(2);
// An admitted joiner's long poll outlives the matchmaking time by this much.
constexpr auto kLongPollSlack = std::chrono::seconds(5);

bool earlier(const Declaration& a, const Declaration& b) {
  return std::tie(a.expiration, a.address.peer) < std::tie(b.expiration, b.address.peer);
}

JoinResponse reply(JoinStatus status, std::optional<PeerAddress> hint = std::nullopt) {
  JoinResponse response;
  response.status = status;
  response.hint = std::move(hint);
  return response;
}

// The steady time point at which the wall clock reads `wall_time` (now if past).
Deadline steady_at(double wall_time, MatchTime now) {
  const double left = wall_time - now.wall;
  if (left <= 0) return now.steady;
  return now.steady +
         std::chrono::duration_cast<SteadyClock::duration>(std::chrono::duration<double>(left));
}

}  // namespace

MatchmakingState::MatchmakingState(MatchmakingOptions options) : options_(std::move(options)) {}

void MatchmakingState::begin(std::string key, PeerAddress self, float weight,
                             std::uint64_t schema_hash, Deadline deadline, MatchTime now) {
  key_ = std::move(key);
  self_ = std::move(self);
  weight_ = weight;
  schema_hash_ = schema_hash;
  deadline_ = deadline;
  expires_ = now.wall + std::chrono::duration<double>(options_.matchmaking_time).count();
  stats_ = {};
  released_ = false;
  abandoned_ = false;
  leading_.reset();
  following_.reset();
  following_key_.clear();
  released_alone_until_.reset();
  result_.reset();
  join_attempts_ = 0;
  deciding_key_ = options_.client_mode ? std::string() : key_;
  phase_ = options_.client_mode ? Phase::settling : Phase::declare;
  settle_end_ = std::min(deadline_, now.steady + options_.settle_time);
}

MatchAction MatchmakingState::next(MatchTime now) {
  MatchAction action;
  switch (phase_) {
    case Phase::declare:
      phase_ = Phase::declaring;
      action.kind = MatchAction::Kind::declare;
      action.key = key_;
      action.declaration = mine();
      return action;
    case Phase::settling:
      if (now.steady < settle_end_) {
        action.until = settle_end_;
        return action;
      }
      phase_ = Phase::listing;
      action.kind = MatchAction::Kind::list;
      action.key = key_;
      return action;
    case Phase::gathering:
      return gather(now);
    case Phase::awaiting_release:
    case Phase::release_grace:
      return await_release(now);
    case Phase::follow:
      if (join_attempts_ >= kMaxJoinAttempts || now.steady >= deadline_)
        return finish(std::nullopt);
      ++join_attempts_;
      phase_ = Phase::joining;
      action.kind = MatchAction::Kind::join;
      action.leader = *following_;
      action.request = {key_, schema_hash_, options_.bandwidth, options_.client_mode,
                        options_.auxiliary};
      action.until = deadline_;
      return action;
    case Phase::finished:
      action.kind = MatchAction::Kind::finish;
      action.group = result_;
      return action;
    case Phase::idle:
    case Phase::declaring:
    case Phase::listing:
    case Phase::looking:
    case Phase::joining:
      return action;  // waiting for the driver's I/O to complete
  }
  return action;
}

void MatchmakingState::on_declared(MatchTime now) {
  if (phase_ != Phase::declaring) return;
  // The settle time counts from the declaration's arrival.
  phase_ = Phase::settling;
  settle_end_ = std::min(deadline_, now.steady + options_.settle_time);
}

void MatchmakingState::on_listed(std::vector<Declaration> declarations, MatchTime now) {
  if (phase_ == Phase::listing) {
    decide(std::move(declarations), now);
    return;
  }
  if (phase_ != Phase::looking) return;
  // A held leader looking again: one earlier than its own that the DHT had
  // not delivered at the decision means another peer leads — follow it, and
  // send the followers it has there, so the swarm ends up in one group.
  phase_ = Phase::gathering;
  auto first = std::min_element(declarations.begin(), declarations.end(), earlier);
  if (first == declarations.end() || released_ || !earlier(*first, mine())) return;
  const PeerAddress leader = first->address;
  auto& group = leading_->group;
  log::debug("matchmaking: {} is led by {} after all; following it with {} follower(s)", key_,
             leader.to_string(), group.members.size() - 1);
  stats_.led_last_round = false;
  if (group.members.size() == 1) {
    leading_.reset();  // nobody joined it: nobody to tell
  } else {
    leading_->phase = LeadPhase::redirected;
    leading_->redirect = leader;
  }
  mark_changed();
  follow(leader);
}

void MatchmakingState::decide(std::vector<Declaration> declarations, MatchTime now) {
  if (!options_.client_mode) {
    bool listed = false;
    for (const auto& d : declarations) listed = listed || d.address.peer == self_.peer;
    if (!listed) declarations.push_back(mine());
  }
  auto earliest = std::min_element(declarations.begin(), declarations.end(), earlier);
  if (earliest == declarations.end()) {  // a client alone
    finish(std::nullopt);
    return;
  }
  if (earliest->address.peer == self_.peer) {
    lead(now);
  } else {
    follow(earliest->address);
  }
}

void MatchmakingState::lead(MatchTime now) {
  stats_.led_last_round = true;
  Leading leading;
  leading.group_key = key_;
  leading.schema_hash = schema_hash_;
  leading.expires = expires_;
  // Group id: hash of (key, leader), so it is unique per round and bounded in size.
  const Hash256 id = hash256(as_bytes(key_ + "/" + self_.peer.to_string()));
  leading.group.group_id.assign(id.begin(), id.end());
  leading.group.schema_hash = schema_hash_;
  leading.group.members.push_back({self_, weight_, options_.bandwidth, options_.auxiliary});
  if (options_.hold_until_released) leading.hold_until = deadline_;
  leading_ = std::move(leading);
  stop_deciding();
  stop_ = std::min(deadline_, steady_at(expires_, now));
  next_look_ = now.steady + 2 * options_.settle_time;
  phase_ = Phase::gathering;
  mark_changed();
}

void MatchmakingState::follow(PeerAddress leader) {
  following_key_ = key_;
  following_ = std::move(leader);
  stop_deciding();
  phase_ = Phase::follow;
}

// Gather until full or time is up; a released held group starts with what it
// has; released alone, it waits only the release grace.
MatchAction MatchmakingState::gather(MatchTime now) {
  const std::size_t members = leading_->group.members.size();
  const std::size_t enough = std::max<std::size_t>(2, options_.min_group_size);
  if (members >= options_.target_group_size || now.steady >= stop_ || abandoned_ ||
      (released_ && members >= enough))
    return end_gathering(now);
  const bool looking = options_.hold_until_released && !released_;
  if (released_ && !released_alone_until_)
    released_alone_until_ = now.steady + options_.release_grace;
  if (released_alone_until_ && now.steady >= *released_alone_until_) return end_gathering(now);
  MatchAction action;
  if (looking && now.steady >= next_look_) {
    next_look_ = now.steady + 2 * options_.settle_time;
    phase_ = Phase::looking;
    action.kind = MatchAction::Kind::list;
    action.key = key_;
    return action;
  }
  action.until = stop_;
  if (looking) action.until = std::min(action.until, next_look_);
  if (released_alone_until_) action.until = std::min(action.until, *released_alone_until_);
  return action;
}

MatchAction MatchmakingState::end_gathering(MatchTime now) {
  const std::size_t enough = std::max<std::size_t>(2, options_.min_group_size);
  if (leading_->group.members.size() < enough || abandoned_) return disband();
  if (!options_.hold_until_released) return start_group();
  phase_ = Phase::awaiting_release;
  return await_release(now);
}

// A held group waits for release() (disbanded if abandoned or the deadline
// comes first), then a short grace for members expected but not in yet (they
// may still be settling), so a slow declarer is not left out.
MatchAction MatchmakingState::await_release(MatchTime now) {
  MatchAction action;
  if (phase_ == Phase::awaiting_release) {
    if (!released_ && !abandoned_ && now.steady < deadline_) {
      action.until = deadline_;
      return action;
    }
    if (!released_ || abandoned_) return disband();
    phase_ = Phase::release_grace;
    grace_end_ = std::min(deadline_, now.steady + options_.release_grace);
  }
  const std::size_t expected = std::min(options_.expected_group_size, options_.target_group_size);
  if (leading_->group.members.size() < expected && !abandoned_ && now.steady < grace_end_) {
    action.until = grace_end_;
    return action;
  }
  return abandoned_ ? disband() : start_group();
}

MatchAction MatchmakingState::start_group() {
  leading_->phase = LeadPhase::started;
  mark_changed();
  return finish(leading_->group);
}

MatchAction MatchmakingState::disband() {
  leading_->phase = LeadPhase::disbanded;
  stats_.last_rejection = JoinStatus::disbanded;
  mark_changed();
  return finish(std::nullopt);
}

MatchAction MatchmakingState::finish(std::optional<GroupInfo> group) {
  phase_ = Phase::finished;
  result_ = std::move(group);
  stop_deciding();
  return next(MatchTime{});
}

void MatchmakingState::on_join_answer(JoinResponse response) {
  if (phase_ != Phase::joining) return;
  if (response.status == JoinStatus::accepted) {
    bool member = false;
    for (auto& m : response.group.members) {
      if (m.address.peer == self_.peer) {
        m.weight = weight_;
        member = true;
      }
    }
    if (!member || response.group.schema_hash != schema_hash_) {
      finish(std::nullopt);
    } else {
      finish(std::move(response.group));
    }
    return;
  }
  stats_.last_rejection = response.status;
  log::debug("matchmaking: {} refused {}: {}", following_->to_string(), key_,
             join_status_name(response.status));
  if (response.status != JoinStatus::not_a_leader || !response.hint ||
      response.hint->peer == self_.peer || response.hint->peer == following_->peer) {
    finish(std::nullopt);
    return;
  }
  following_ = *response.hint;
  phase_ = Phase::follow;
}

void MatchmakingState::on_join_failed() {
  if (phase_ == Phase::joining) finish(std::nullopt);
}

void MatchmakingState::release() {
  released_ = true;
  mark_changed();
}

void MatchmakingState::abandon() {
  abandoned_ = true;
  mark_changed();
}

void MatchmakingState::stop_deciding() {
  if (deciding_key_.empty()) return;
  deciding_key_.clear();
  mark_changed();
}

bool MatchmakingState::handles(const std::string& key) const {
  return deciding_key_ == key || following_key_ == key || (leading_ && leading_->group_key == key);
}

JoinTicket MatchmakingState::open_join(JoinRequest request, PeerId caller,
                                       std::optional<PeerAddress> reply_address,
                                       MatchTime now) const {
  JoinTicket ticket;
  ticket.request = std::move(request);
  ticket.caller = caller;
  ticket.reply_address = std::move(reply_address);
  ticket.decide_by = now.steady + kDecisionWait;
  return ticket;
}

JoinVerdict MatchmakingState::join_verdict(JoinTicket& ticket, MatchTime now) {
  const std::string& key = ticket.request.group_key;
  if (!ticket.admitted) {
    if (deciding_key_ == key && now.steady < ticket.decide_by)
      return {std::nullopt, ticket.decide_by};
    JoinVerdict verdict = admit(ticket, now);
    if (!ticket.admitted) return verdict;
  }
  // Long poll: answer when the leader starts or disbands the group.
  const bool same = leading_ && leading_->group_key == key;
  if (same && leading_->phase == LeadPhase::open && now.steady < ticket.give_up)
    return {std::nullopt, ticket.give_up};
  if (same && leading_->phase == LeadPhase::redirected)
    return {reply(JoinStatus::not_a_leader, leading_->redirect)};
  if (!same || leading_->phase != LeadPhase::started) return {reply(JoinStatus::disbanded)};
  JoinResponse accepted;
  accepted.status = JoinStatus::accepted;
  accepted.group = leading_->group;
  return {std::move(accepted)};
}

// The checks a join passes before it is in the group; admits it when it does.
JoinVerdict MatchmakingState::admit(JoinTicket& ticket, MatchTime now) {
  const JoinRequest& request = ticket.request;
  if (!leading_ || leading_->group_key != request.group_key) {
    std::optional<PeerAddress> hint;
    if (following_key_ == request.group_key) hint = following_;
    return {reply(JoinStatus::not_a_leader, hint)};
  }
  Leading& leading = *leading_;
  if (leading.phase == LeadPhase::redirected)
    return {reply(JoinStatus::not_a_leader, leading.redirect)};
  if (leading.phase == LeadPhase::disbanded) return {reply(JoinStatus::disbanded)};
  if (leading.phase != LeadPhase::open || now.wall > leading.expires)
    return {reply(JoinStatus::expired)};
  if (request.schema_hash != leading.schema_hash) return {reply(JoinStatus::bad_schema)};
  for (const auto& m : leading.group.members)
    if (m.address.peer == ticket.caller) return {reply(JoinStatus::duplicate)};
  if (leading.group.members.size() >= options_.target_group_size)
    return {reply(JoinStatus::group_full)};

  GroupMember member;
  // A client-mode peer has no reply address: it owns no part, so nobody dials it.
  const bool client = request.client_mode || !ticket.reply_address;
  member.address = ticket.reply_address.value_or(PeerAddress{ticket.caller, "", 0});
  member.bandwidth = client ? 0.0 : request.bandwidth;
  member.auxiliary = request.auxiliary;
  leading.group.members.push_back(member);
  ticket.admitted = true;
  ticket.give_up = std::max(steady_at(leading.expires, now) + kLongPollSlack,
                            leading.hold_until.value_or(Deadline::min()));
  mark_changed();
  return {};
}

}  // namespace apiary::averaging
