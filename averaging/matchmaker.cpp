#include "averaging/matchmaker.hpp"

#include "core/async.hpp"
#include "core/error.hpp"
#include "core/hash.hpp"
#include "core/log.hpp"

#include <asio/steady_timer.hpp>

#include <algorithm>

namespace apiary::averaging {

using async::Signal;

std::function<std::string(std::uint64_t)> moshpit_suffix(std::size_t row, std::size_t col) {
  return [row, col](std::uint64_t round) {
    return round % 2 == 0 ? "/r" + std::to_string(row) : "/c" + std::to_string(col);
  };
}

struct Matchmaker::State {
  State(const asio::any_io_executor& executor, Clock clock)
      : clock(std::move(clock)), changed(executor) {}
  Clock clock;
  // redirected: another peer leads this key after all; joiners are sent there.
  enum class Phase { open, started, disbanded, redirected };
  struct Leading {
    std::string group_key;
    std::uint64_t schema_hash = 0;
    std::size_t target = 0;
    double expires = 0;  // system time
    Phase phase = Phase::open;
    GroupInfo group;  // leader first, then followers in join order
    // Held groups: followers' join requests wait for the start until then.
    std::optional<Deadline> hold_until;
    std::optional<PeerAddress> redirect;  // Phase::redirected: the peer that leads
  };
  std::optional<Leading> leading;
  std::string deciding_key;  // declared under it, not yet decided whether to lead
  std::string following_key;
  std::optional<PeerAddress> following;
  bool released = false;   // hold_until_released: this peer is ready
  bool abandoned = false;  // this peer will not average in this round
  Signal changed;

  bool handles(const std::string& key) const {
    return deciding_key == key || following_key == key || (leading && leading->group_key == key);
  }
};

struct JoinService::Registry {
  std::vector<std::weak_ptr<Matchmaker::State>> states;

  void add(const std::shared_ptr<Matchmaker::State>& state) {
    std::erase_if(states, [](const auto& weak) { return weak.expired(); });
    states.push_back(state);
  }
  // The matchmaker busy with `key`, if any (the newest first).
  std::shared_ptr<Matchmaker::State> find(const std::string& key) const {
    for (auto it = states.rbegin(); it != states.rend(); ++it) {
      if (auto state = it->lock(); state && state->handles(key)) return state;
    }
    return nullptr;
  }
};

namespace {

asio::awaitable<Bytes> handle_join(std::shared_ptr<JoinService::Registry> registry,
                                   rpc::RequestContext context, Bytes request_bytes) {
  const JoinRequest request = decode_join(request_bytes);
  const auto state = registry->find(request.group_key);
  if (!state) co_return encode_response(JoinStatus::not_a_leader, nullptr, std::nullopt);
  // A joiner may see this peer's declaration before this peer has listed the
  // others and decided to lead: wait for the decision rather than refuse.
  const auto decide_by = state->clock.now() + std::chrono::seconds(2);
  while (state->deciding_key == request.group_key && state->clock.now() < decide_by)
    co_await state->changed.wait_until(decide_by);
  auto& leading = state->leading;
  if (!leading || leading->group_key != request.group_key) {
    std::optional<PeerAddress> hint;
    if (state->following_key == request.group_key) hint = state->following;
    co_return encode_response(JoinStatus::not_a_leader, nullptr, hint);
  }
  if (leading->phase == Matchmaker::State::Phase::redirected)
    co_return encode_response(JoinStatus::not_a_leader, nullptr, leading->redirect);
  if (leading->phase == Matchmaker::State::Phase::disbanded)
    co_return encode_response(JoinStatus::disbanded, nullptr, std::nullopt);
  if (leading->phase != Matchmaker::State::Phase::open ||
      state->clock.wall_now() > leading->expires)
    co_return encode_response(JoinStatus::expired, nullptr, std::nullopt);
  if (request.schema_hash != leading->schema_hash)
    co_return encode_response(JoinStatus::bad_schema, nullptr, std::nullopt);
  for (const auto& m : leading->group.members)
    if (m.address.peer == context.peer)
      co_return encode_response(JoinStatus::duplicate, nullptr, std::nullopt);
  if (leading->group.members.size() >= leading->target)
    co_return encode_response(JoinStatus::group_full, nullptr, std::nullopt);

  GroupMember member;
  // A client-mode peer has no reply address: it owns no part, so nobody dials it.
  const bool client = request.client_mode || !context.reply_address;
  member.address = context.reply_address.value_or(PeerAddress{context.peer, "", 0});
  member.bandwidth = client ? 0.0 : request.bandwidth;
  member.auxiliary = request.auxiliary;
  leading->group.members.push_back(member);
  const std::string key = leading->group_key;
  state->changed.notify_all();
  // Long poll: answer when the leader starts or disbands the group.
  const auto give_up = std::max(state->clock.steady_at(leading->expires) + std::chrono::seconds(5),
                                leading->hold_until.value_or(Deadline::min()));
  while (state->leading && state->leading->group_key == key &&
         state->leading->phase == Matchmaker::State::Phase::open && state->clock.now() < give_up)
    co_await state->changed.wait_until(give_up);
  if (state->leading && state->leading->group_key == key &&
      state->leading->phase == Matchmaker::State::Phase::redirected)
    co_return encode_response(JoinStatus::not_a_leader, nullptr, state->leading->redirect);
  if (!state->leading || state->leading->group_key != key ||
      state->leading->phase != Matchmaker::State::Phase::started)
    co_return encode_response(JoinStatus::disbanded, nullptr, std::nullopt);
  co_return encode_response(JoinStatus::accepted, &state->leading->group, std::nullopt);
}

// A held group this peer leads: waits for release() (false if abandoned or
// the deadline came first), then a short grace for members expected but not
// in yet (they may still be settling), so a slow declarer is not left out.
asio::awaitable<bool> wait_for_release(Matchmaker::State& state, const MatchmakingOptions& options,
                                       Deadline deadline) {
  while (!state.released && !state.abandoned && state.clock.now() < deadline)
    co_await state.changed.wait_until(deadline);
  if (!state.released || state.abandoned) co_return false;
  const std::size_t expected = std::min(options.expected_group_size, options.target_group_size);
  const auto grace = std::min(deadline, state.clock.now() + options.release_grace);
  while (state.leading->group.members.size() < expected && !state.abandoned &&
         state.clock.now() < grace)
    co_await state.changed.wait_until(grace);
  co_return !state.abandoned;
}

}  // namespace

JoinService::JoinService(rpc::RpcNode& node) : registry_(std::make_shared<Registry>()) {
  node.add_method(std::string(kJoinMethod),
                  [registry = registry_](const rpc::RequestContext& context,
                                         Bytes request) -> asio::awaitable<Bytes> {
                    return handle_join(registry, context, std::move(request));
                  });
}

Matchmaker::Matchmaker(rpc::RpcNode& node, std::shared_ptr<GroupKeyStore> store,
                       MatchmakingOptions options, std::shared_ptr<JoinService> joins)
    : node_(node),
      store_(std::move(store)),
      options_(std::move(options)),
      joins_(joins ? std::move(joins) : std::make_shared<JoinService>(node)),
      state_(std::make_shared<State>(node.get_executor(), options_.clock)) {
  if (options_.min_group_size < 1 || options_.target_group_size < options_.min_group_size)
    throw Error(Errc::invalid_argument, "matchmaking: need 1 <= min_group_size <= target");
  joins_->registry_->add(state_);
}

Matchmaker::~Matchmaker() = default;

void Matchmaker::release() {
  state_->released = true;
  state_->changed.notify_all();
}

void Matchmaker::abandon() {
  state_->abandoned = true;
  state_->changed.notify_all();
}

asio::awaitable<std::optional<GroupInfo>> Matchmaker::find_group(float weight,
                                                                 std::uint64_t schema_hash,
                                                                 Deadline deadline) {
  // The frame keeps the state alive: if the io_context is torn down while
  // this waits, its timers unregister from signals that must still exist,
  // even when the Matchmaker itself is already gone.
  const std::shared_ptr<State> state = state_;
  const std::uint64_t round = round_++;
  const std::string key = options_.prefix + "/" + std::to_string(round) +
                          (options_.key_suffix ? options_.key_suffix(round) : std::string());
  const PeerAddress self = node_.local_address();
  const double expires =
      state->clock.wall_now() + std::chrono::duration<double>(options_.matchmaking_time).count();
  stats_ = {};
  state->released = false;
  state->abandoned = false;
  state->leading.reset();
  state->following.reset();
  state->following_key.clear();
  state->deciding_key = options_.client_mode ? std::string() : key;
  // Ends the deciding phase: at the decision, or however find_group leaves.
  struct Decision {
    State& state;
    void made() {
      if (state.deciding_key.empty()) return;
      state.deciding_key.clear();
      state.changed.notify_all();
    }
    ~Decision() { made(); }
  } decision{*state};

  if (!options_.client_mode) {
    // (named locals, not temporaries, in co_await expressions: GCC 12 miscompiles those)
    Declaration mine{self, expires};
    co_await store_->declare(key, std::move(mine));
  }
  {
    asio::steady_timer settle(node_.get_executor(),
                              std::min(deadline, state->clock.now() + options_.settle_time));
    co_await settle.async_wait(asio::use_awaitable);
  }
  auto declarations = co_await store_->list(key, state->clock.wall_now());
  if (!options_.client_mode) {
    bool listed = false;
    for (const auto& d : declarations) listed = listed || d.address.peer == self.peer;
    if (!listed) declarations.push_back({self, expires});
  }
  auto earlier = [](const Declaration& a, const Declaration& b) {
    return std::tie(a.expiration, a.address.peer) < std::tie(b.expiration, b.address.peer);
  };
  auto earliest = std::min_element(declarations.begin(), declarations.end(), earlier);
  if (earliest == declarations.end()) co_return std::nullopt;  // a client alone

  // Set when a held leader finds, looking again, that another peer leads.
  std::optional<PeerAddress> leader_found_later;
  if (earliest->address.peer == self.peer) {
    // Lead: gather followers until the group is full or time is up.
    stats_.led_last_round = true;
    State::Leading leading;
    leading.group_key = key;
    leading.schema_hash = schema_hash;
    leading.target = options_.target_group_size;
    leading.expires = expires;
    // Group id: hash of (key, leader), so it is unique per round and bounded in size.
    const Hash256 id = hash256(as_bytes(key + "/" + self.peer.to_string()));
    leading.group.group_id.assign(id.begin(), id.end());
    leading.group.schema_hash = schema_hash;
    leading.group.members.push_back({self, weight, options_.bandwidth, options_.auxiliary});
    if (options_.hold_until_released) leading.hold_until = deadline;
    state->leading = std::move(leading);
    decision.made();
    const std::size_t enough = std::max<std::size_t>(2, options_.min_group_size);
    auto& group = state->leading->group;
    auto disband = [&] {
      state->leading->phase = State::Phase::disbanded;
      state->changed.notify_all();
      stats_.last_rejection = JoinStatus::disbanded;
    };
    // Gather until full or time is up; a released held group starts with what it has.
    const auto stop = std::min(deadline, state->clock.steady_at(expires));
    // A held leader looks at the declarations again now and then until it is
    // released: one earlier than its own that the DHT had not delivered at the
    // decision means another peer leads — follow it, and send the followers
    // it has there (a not_a_leader answer with the hint), so the swarm ends up
    // in one group rather than two. Released alone, it waits only the release
    // grace.
    const auto look_period = 2 * options_.settle_time;
    auto next_look = state->clock.now() + look_period;
    std::optional<Deadline> released_alone_until;
    while (group.members.size() < options_.target_group_size && state->clock.now() < stop &&
           !state->abandoned && !(state->released && group.members.size() >= enough)) {
      const bool looking = options_.hold_until_released && !state->released;
      if (state->released && !released_alone_until)
        released_alone_until = state->clock.now() + options_.release_grace;
      if (released_alone_until && state->clock.now() >= *released_alone_until) break;
      if (looking && state->clock.now() >= next_look) {
        next_look = state->clock.now() + look_period;
        auto again = co_await store_->list(key, state->clock.wall_now());
        auto first = std::min_element(again.begin(), again.end(), earlier);
        const Declaration mine{self, expires};
        if (first != again.end() && !state->released && earlier(*first, mine)) {
          leader_found_later = first->address;
          break;
        }
        continue;
      }
      auto wake = stop;
      if (looking) wake = std::min(wake, next_look);
      if (released_alone_until) wake = std::min(wake, *released_alone_until);
      co_await state->changed.wait_until(wake);
    }
    if (!leader_found_later) {
      bool ready = group.members.size() >= enough && !state->abandoned;
      if (ready && options_.hold_until_released)
        ready = co_await wait_for_release(*state, options_, deadline);
      if (!ready) {
        disband();
        co_return std::nullopt;
      }
      state->leading->phase = State::Phase::started;
      state->changed.notify_all();
      co_return group;
    }
    log::debug("matchmaking: {} is led by {} after all; following it with {} follower(s)", key,
               leader_found_later->to_string(), group.members.size() - 1);
    stats_.led_last_round = false;
    if (group.members.size() == 1) {
      state->leading.reset();  // nobody joined it: nobody to tell
    } else {
      state->leading->phase = State::Phase::redirected;
      state->leading->redirect = leader_found_later;
      state->changed.notify_all();
    }
  }

  // Follow: join the earliest declaration (or the leader found later),
  // following not_a_leader hints.
  PeerAddress leader = leader_found_later ? *leader_found_later : earliest->address;
  state->following_key = key;
  decision.made();
  for (int attempt = 0; attempt < 4 && state->clock.now() < deadline; ++attempt) {
    state->following = leader;
    JoinRequest request{key, schema_hash, options_.bandwidth, options_.client_mode,
                        options_.auxiliary};
    rpc::CallOptions call_options;
    call_options.timeout = std::max(
        std::chrono::milliseconds(1),
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - state->clock.now()));
    JoinResponse response;
    try {
      Bytes payload = encode_join(request);
      Bytes answer = co_await node_.call(leader, kJoinMethod, std::move(payload), call_options);
      response = decode_response(answer);
    } catch (const std::exception& e) {
      log::debug("matchmaking: join {} at {} failed: {}", key, leader.to_string(), e.what());
      co_return std::nullopt;
    }
    if (response.status == JoinStatus::accepted) {
      bool member = false;
      for (auto& m : response.group.members) {
        if (m.address.peer == self.peer) {
          m.weight = weight;
          member = true;
        }
      }
      if (!member || response.group.schema_hash != schema_hash) co_return std::nullopt;
      co_return response.group;
    }
    stats_.last_rejection = response.status;
    log::debug("matchmaking: {} refused {}: {}", leader.to_string(), key,
               join_status_name(response.status));
    if (response.status != JoinStatus::not_a_leader || !response.hint ||
        response.hint->peer == self.peer || response.hint->peer == leader.peer)
      co_return std::nullopt;
    leader = *response.hint;
  }
  co_return std::nullopt;
}

}  // namespace apiary::averaging
