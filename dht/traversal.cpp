#include "dht/traversal.hpp"

#include "core/async.hpp"

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/this_coro.hpp>

#include <map>
#include <memory>
#include <unordered_set>

namespace apiary::dht {

namespace {

struct Candidate {
  PeerAddress address;
  int hop = 1;
};

struct KeyState {
  NodeId target;
  std::map<NodeId, Candidate> candidates;  // unvisited, by distance to target
  std::map<NodeId, Candidate> beam;        // answered, by distance to target
  std::unordered_set<NodeId> seen;         // ever a candidate
  std::size_t in_flight = 0;
  bool finished = false;
  KeyTraversal outcome;
};

struct State {
  explicit State(asio::any_io_executor executor) : wakeup(executor) {}
  std::vector<KeyState> keys;
  NodeId self;
  FindFunction find;
  ResultFunction on_result;
  SkipFunction skip;
  TraversalOptions options;
  std::size_t in_flight = 0;
  std::size_t requests = 0;
  bool done = false;
  bool dirty = false;  // an event arrived since the coordinator last looked
  async::Signal wakeup;

  void notify() {
    dirty = true;
    wakeup.notify_all();
  }

  // Drops blacklisted candidates at the front; true when the front may be asked.
  bool has_eligible(KeyState& key) {
    while (!key.candidates.empty()) {
      auto front = key.candidates.begin();
      if (skip && skip(front->second.address.peer)) {
        key.candidates.erase(front);
        continue;
      }
      return key.beam.size() < options.beam_size || front->first < key.beam.rbegin()->first;
    }
    return false;
  }

  void add_candidate(KeyState& key, const PeerAddress& address, int hop) {
    const NodeId id = NodeId::from_peer(address.peer);
    if (id == self || !key.seen.insert(id).second) return;
    key.candidates.emplace(distance(id, key.target), Candidate{address, hop});
  }

  void finish_converged_keys() {
    for (auto& key : keys) {
      if (key.finished || key.in_flight > 0 || has_eligible(key)) continue;
      key.finished = true;
      if (!key.beam.empty()) key.outcome.hops = key.beam.begin()->second.hop;
    }
  }

  bool all_finished() const {
    for (const auto& key : keys)
      if (!key.finished) return false;
    return true;
  }
};

void on_answer(const std::shared_ptr<State>& state, const Candidate& peer,
               const std::vector<std::size_t>& indices,
               const std::optional<std::vector<wire::FindResult>>& results) {
  state->in_flight -= 1;
  for (std::size_t index : indices) state->keys[index].in_flight -= 1;
  if (state->done) return;
  const NodeId peer_id = NodeId::from_peer(peer.address.peer);
  if (results && results->size() == indices.size()) {
    for (std::size_t i = 0; i < indices.size(); ++i) {
      KeyState& key = state->keys[indices[i]];
      if (key.finished) continue;
      key.beam.emplace(distance(peer_id, key.target), peer);
      if (key.beam.size() > state->options.beam_size) key.beam.erase(std::prev(key.beam.end()));
      if (state->on_result(indices[i], peer.address, (*results)[i])) {
        key.finished = true;
        key.outcome.finished_by_result = true;
        key.outcome.hops = peer.hop;
        continue;
      }
      for (const auto& next : (*results)[i].nearest) state->add_candidate(key, next, peer.hop + 1);
    }
  }
  state->notify();
}

// Starts requests while the limits allow; each carries every key waiting on that peer.
void launch_requests(const std::shared_ptr<State>& state, const asio::any_io_executor& executor) {
  auto& opts = state->options;
  while (state->in_flight < opts.max_in_flight) {
    KeyState* chosen = nullptr;
    for (auto& key : state->keys) {
      if (key.finished || key.in_flight >= opts.alpha || !state->has_eligible(key)) continue;
      if (!chosen || key.in_flight < chosen->in_flight) chosen = &key;
      if (chosen->in_flight == 0) break;
    }
    if (!chosen) return;
    const Candidate peer = chosen->candidates.begin()->second;
    chosen->candidates.erase(chosen->candidates.begin());
    const NodeId peer_id = NodeId::from_peer(peer.address.peer);
    std::vector<std::size_t> indices{static_cast<std::size_t>(chosen - state->keys.data())};
    std::vector<NodeId> key_ids{chosen->target};
    for (std::size_t i = 0; i < state->keys.size() && indices.size() < opts.max_keys_per_call;
         ++i) {
      KeyState& key = state->keys[i];
      if (&key == chosen || key.finished || key.in_flight >= opts.alpha) continue;
      auto it = key.candidates.find(distance(peer_id, key.target));
      if (it == key.candidates.end()) continue;
      key.candidates.erase(it);
      indices.push_back(i);
      key_ids.push_back(key.target);
    }
    for (std::size_t index : indices) state->keys[index].in_flight += 1;
    state->in_flight += 1;
    state->requests += 1;
    asio::co_spawn(
        executor,
        [state, peer, indices = std::move(indices),
         key_ids = std::move(key_ids)]() mutable -> asio::awaitable<void> {
          std::optional<std::vector<wire::FindResult>> results;
          try {
            results = co_await state->find(peer.address, std::move(key_ids));
          } catch (const std::exception&) {
            results.reset();
          }
          on_answer(state, peer, indices, results);
        },
        asio::detached);
  }
}

}  // namespace

asio::awaitable<TraversalResult> traverse(std::vector<NodeId> targets, InitialFunction initial,
                                          const NodeId& self, FindFunction find,
                                          ResultFunction on_result, SkipFunction skip,
                                          TraversalOptions options) {
  auto executor = co_await asio::this_coro::executor;
  auto state = std::make_shared<State>(executor);
  state->self = self;
  state->find = std::move(find);
  state->on_result = std::move(on_result);
  state->skip = std::move(skip);
  state->options = options;
  state->keys.resize(targets.size());
  for (std::size_t i = 0; i < targets.size(); ++i) {
    state->keys[i].target = targets[i];
    for (const auto& address : initial(targets[i]))
      state->add_candidate(state->keys[i], address, 1);
  }

  while (true) {
    state->dirty = false;
    launch_requests(state, executor);
    state->finish_converged_keys();
    if (state->all_finished()) break;
    if (state->in_flight == 0 && !state->dirty) break;  // defensive: nothing left to wait for
    if (state->dirty) continue;
    co_await state->wakeup.wait();
  }
  state->done = true;

  TraversalResult result;
  result.requests = state->requests;
  for (auto& key : state->keys) {
    for (const auto& [dist, candidate] : key.beam) key.outcome.nearest.push_back(candidate.address);
    result.keys.push_back(std::move(key.outcome));
  }
  co_return result;
}

}  // namespace apiary::dht
