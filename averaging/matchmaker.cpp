// Matchmaker: drives MatchmakingState over the GroupKeyStore and RPC; the
// JoinService answers other peers' joins from the same state.
#include "averaging/matchmaker.hpp"

#include "core/async.hpp"
#include "core/error.hpp"
#include "core/log.hpp"

#include <algorithm>

namespace apiary::averaging {

std::function<std::string(std::uint64_t)> moshpit_suffix(std::size_t row, std::size_t col) {
  return [row, col](std::uint64_t round) {
    return round % 2 == 0 ? "/r" + std::to_string(row) : "/c" + std::to_string(col);
  };
}

struct Matchmaker::State {
  State(const asio::any_io_executor& executor, const MatchmakingOptions& options)
      : clock(options.clock), machine(options), changed(executor) {}
  Clock clock;
  MatchmakingState machine;
  async::Signal changed;  // wakes find_group and the join handlers waiting on the machine

  MatchTime now() const { return {clock.now(), clock.wall_now()}; }
  // Wakes every waiter when the machine changed since the last look.
  void publish() {
    if (machine.take_changed()) changed.notify_all();
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
      if (auto state = it->lock(); state && state->machine.handles(key)) return state;
    }
    return nullptr;
  }
};

namespace {

asio::awaitable<Bytes> handle_join(std::shared_ptr<JoinService::Registry> registry,
                                   rpc::RequestContext context, Bytes request_bytes) {
  JoinRequest request = decode_join(request_bytes);
  const auto state = registry->find(request.group_key);
  if (!state) co_return encode_response(JoinStatus::not_a_leader);
  JoinTicket ticket = state->machine.open_join(std::move(request), context.peer,
                                               context.reply_address, state->now());
  for (;;) {
    const JoinVerdict verdict = state->machine.join_verdict(ticket, state->now());
    state->publish();
    if (verdict.answer)
      co_return encode_response(verdict.answer->status, &verdict.answer->group,
                                verdict.answer->hint);
    co_await state->changed.wait_until(verdict.wake);
  }
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
      state_(std::make_shared<State>(node.get_executor(), options_)) {
  if (options_.min_group_size < 1 || options_.target_group_size < options_.min_group_size)
    throw Error(Errc::invalid_argument, "matchmaking: need 1 <= min_group_size <= target");
  joins_->registry_->add(state_);
}

Matchmaker::~Matchmaker() = default;

const MatchmakingStats& Matchmaker::stats() const noexcept {
  return state_->machine.stats();
}

void Matchmaker::release() {
  state_->machine.release();
  state_->publish();
}

void Matchmaker::abandon() {
  state_->machine.abandon();
  state_->publish();
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
  MatchmakingState& machine = state->machine;
  machine.begin(key, node_.local_address(), weight, schema_hash, deadline, state->now());
  // However find_group leaves (also when its frame is destroyed): decided.
  struct Leave {
    State& state;
    ~Leave() {
      state.machine.stop_deciding();
      state.publish();
    }
  } leave{*state};
  for (;;) {
    MatchAction action = machine.next(state->now());
    state->publish();
    switch (action.kind) {
      case MatchAction::Kind::declare: {
        // (named locals, not temporaries, in co_await expressions: GCC 12 miscompiles those)
        Declaration mine = action.declaration;
        co_await store_->declare(action.key, std::move(mine));
        machine.on_declared(state->now());
        break;
      }
      case MatchAction::Kind::list: {
        auto declarations = co_await store_->list(action.key, state->clock.wall_now());
        machine.on_listed(std::move(declarations), state->now());
        break;
      }
      case MatchAction::Kind::join:
        co_await join(action);
        break;
      case MatchAction::Kind::wait:
        co_await state->changed.wait_until(action.until);
        break;
      case MatchAction::Kind::finish:
        co_return action.group;
    }
  }
}

asio::awaitable<void> Matchmaker::join(const MatchAction& action) {
  const std::shared_ptr<State> state = state_;
  rpc::CallOptions call_options;
  call_options.timeout = std::max(
      std::chrono::milliseconds(1),
      std::chrono::duration_cast<std::chrono::milliseconds>(action.until - state->clock.now()));
  std::optional<JoinResponse> response;
  try {
    Bytes payload = encode_join(action.request);
    Bytes answer =
        co_await node_.call(action.leader, kJoinMethod, std::move(payload), call_options);
    response = decode_response(answer);
  } catch (const std::exception& e) {
    log::debug("matchmaking: join {} at {} failed: {}", action.request.group_key,
               action.leader.to_string(), e.what());
  }
  if (response) {
    state->machine.on_join_answer(std::move(*response));
  } else {
    state->machine.on_join_failed();
  }
}

}  // namespace apiary::averaging
