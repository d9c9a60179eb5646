#include "averaging/state_sharing.hpp"

#include "averaging/state_wire.hpp"
#include "core/async.hpp"
#include "core/codec.hpp"
#include "core/error.hpp"
#include "core/hash.hpp"
#include "core/log.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <deque>

namespace apiary::averaging {
namespace {

using async::Signal;
using async::TaskGroup;

constexpr std::string_view kMetaMethod = "averaging.state.meta";
constexpr std::string_view kChunkMethod = "averaging.state.chunk";

ByteSpan bytes_of(std::span<const float> values) {
  return {reinterpret_cast<const std::uint8_t*>(values.data()), values.size_bytes()};
}

}  // namespace

struct StateDonor::State {
  StateSnapshot snapshot;
  std::vector<ChunkRef> table;
  Bytes meta;  // encoded once per publish
  std::size_t chunk_elements = 0;
  std::size_t served = 0;
  std::function<std::optional<StateSnapshot>()> provider;  // serve_on_demand()
  std::chrono::milliseconds busy_window{0};
  Deadline last_request{};  // of any meta or chunk request
  Clock clock;
  bool has_snapshot = false;

  void publish(StateSnapshot snapshot);
  // On demand: a fresh snapshot unless a download may be using the current one.
  // A metadata request answered from the current snapshot does not extend
  // the window (only chunk requests and fresh snapshots do): otherwise peers
  // polling for a newer state than this donor had would keep it on its old
  // one forever.
  void refresh() {
    if (!provider) return;
    const auto now = clock.now();
    if (has_snapshot && now - last_request < busy_window) return;
    last_request = now;
    auto fresh = provider();
    if (!fresh) throw Error(Errc::not_found, "no state to serve");
    publish(std::move(*fresh));
    has_snapshot = true;
  }
};

StateDonor::StateDonor(rpc::RpcNode& node, std::size_t chunk_elements, Clock clock)
    : node_(node), state_(std::make_shared<State>()) {
  if (chunk_elements == 0 || chunk_elements > kMaxStateChunkElements)
    throw Error(Errc::invalid_argument, "state donor: bad chunk size");
  state_->chunk_elements = chunk_elements;
  state_->clock = std::move(clock);
  publish({});
  node_.add_method(std::string(kMetaMethod),
                   [state = state_](const rpc::RequestContext&, Bytes) -> asio::awaitable<Bytes> {
                     state->refresh();
                     co_return state->meta;
                   });
  node_.add_method(
      std::string(kChunkMethod),
      [state = state_](const rpc::RequestContext&, Bytes request) -> asio::awaitable<Bytes> {
        const auto doc = codec::parse(request);
        const auto index = doc.root().array("state.chunk", 1, 1).next().uint("state.chunk.index");
        if (index >= state->table.size()) throw Error(Errc::not_found, "no such state chunk");
        const ChunkRef& c = state->table[index];
        state->last_request = state->clock.now();
        const auto values =
            std::span<const float>(state->snapshot.tensors[c.tensor]).subspan(c.offset, c.count);
        ++state->served;
        const ByteSpan raw = bytes_of(values);
        co_return Bytes(raw.begin(), raw.end());
      });
}

void StateDonor::publish(StateSnapshot snapshot) {
  state_->publish(std::move(snapshot));
}

void StateDonor::serve_on_demand(std::function<std::optional<StateSnapshot>()> provider,
                                 std::chrono::milliseconds busy_window) {
  state_->provider = std::move(provider);
  state_->busy_window = busy_window;
  state_->has_snapshot = false;
  if (!state_->provider) state_->publish({});  // nothing is served until the next publish()
}

void StateDonor::State::publish(StateSnapshot snapshot) {
  std::vector<std::size_t> sizes;
  for (const auto& t : snapshot.tensors) sizes.push_back(t.size());
  auto table = chunk_table(sizes, chunk_elements);
  StateMeta meta_out{snapshot.epoch, snapshot.metadata, sizes, chunk_elements, {}};
  meta_out.hashes.reserve(table.size());
  for (const auto& c : table) {
    const auto values =
        std::span<const float>(snapshot.tensors[c.tensor]).subspan(c.offset, c.count);
    meta_out.hashes.push_back(hash256(bytes_of(values)));
  }
  Bytes meta = encode_state_meta(meta_out);
  this->snapshot = std::move(snapshot);
  this->table = std::move(table);
  this->meta = std::move(meta);
}

asio::awaitable<bool> StateDonor::announce(GroupKeyStore& store, const std::string& prefix,
                                           double expiration) {
  Declaration mine{node_.local_address(), expiration};
  co_return co_await store.declare(prefix + "/state", std::move(mine));
}

std::size_t StateDonor::chunks_served() const noexcept {
  return state_->served;
}

namespace {

struct Download {
  explicit Download(const asio::any_io_executor& executor) : changed(executor) {}
  StateMeta meta;
  std::vector<ChunkRef> table;
  std::deque<std::size_t> queue;
  std::size_t in_flight = 0;
  std::size_t done = 0;
  std::size_t retries = 0;
  std::vector<PeerId> liars;  // sent bytes that do not match the hashes they announced
  bool poisoned = false;      // a chunk matching the agreed hashes holds a non-finite value
  StateSnapshot result;
  Signal changed;
};

asio::awaitable<void> fetch_meta(rpc::RpcNode& node, PeerAddress donor,
                                 std::chrono::milliseconds timeout, std::optional<StateMeta>& out) {
  try {
    rpc::CallOptions options;
    options.timeout = timeout;
    Bytes empty;
    Bytes answer = co_await node.call(donor, kMetaMethod, std::move(empty), options);
    out = decode_state_meta(answer);
  } catch (const std::exception& e) {
    log::debug("state download: donor {} gave no metadata: {}", donor.to_string(), e.what());
  }
}

bool all_finite(ByteSpan raw) {
  for (std::size_t at = 0; at + sizeof(float) <= raw.size(); at += sizeof(float)) {
    float value;
    std::memcpy(&value, raw.data() + at, sizeof value);
    if (!std::isfinite(value)) return false;
  }
  return true;
}

// Pulls chunks from one donor until none are left or the donor fails.
asio::awaitable<void> pull_from(rpc::RpcNode& node, PeerAddress donor, std::shared_ptr<Download> d,
                                Deadline deadline) {
  while (d->done < d->table.size() && !d->poisoned && SteadyClock::now() < deadline) {
    if (d->queue.empty()) {
      if (d->in_flight == 0) co_return;
      co_await d->changed.wait_until(deadline);  // a failed chunk may come back
      continue;
    }
    const std::size_t index = d->queue.front();
    d->queue.pop_front();
    ++d->in_flight;
    bool ok = false;
    try {
      codec::Writer w;
      w.array(1).uint(index);
      Bytes request = w.take();
      rpc::CallOptions options;
      options.timeout = std::max(
          std::chrono::milliseconds(1),
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - SteadyClock::now()));
      Bytes raw = co_await node.call(donor, kChunkMethod, std::move(request), options);
      const ChunkRef& c = d->table[index];
      if (raw.size() != c.count * sizeof(float) || hash256(raw) != d->meta.hashes[index]) {
        log::warn("state download: donor {} sent chunk {} not matching its hashes; banned",
                  donor.to_string(), index);
        d->liars.push_back(donor.peer);
      } else if (!all_finite(raw)) {
        d->poisoned = true;
      } else {
        std::memcpy(d->result.tensors[c.tensor].data() + c.offset, raw.data(), raw.size());
        ok = true;
      }
    } catch (const std::exception& e) {
      log::debug("state download: chunk {} from {} failed: {}", index, donor.to_string(), e.what());
    }
    --d->in_flight;
    if (ok) {
      ++d->done;
    } else {
      d->queue.push_back(index);  // another donor retries it
      ++d->retries;
    }
    d->changed.notify_all();
    if (!ok) co_return;  // this donor is done for
  }
}

asio::awaitable<std::vector<DonorAnswer>> ask_donors(rpc::RpcNode& node, GroupKeyStore& store,
                                                     const DownloadOptions& options,
                                                     const Clock& clock) {
  auto donors = co_await store.list(options.prefix + "/state", clock.wall_now());
  std::erase_if(donors, [&](const Declaration& d) {
    return d.address.peer == node.peer_id() ||
           (options.bans != nullptr && options.bans->contains(d.address.peer));
  });
  std::vector<std::optional<StateMeta>> metas(donors.size());
  {
    TaskGroup tasks(node.get_executor());
    const auto timeout = std::clamp(std::chrono::duration_cast<std::chrono::milliseconds>(
                                        options.deadline - SteadyClock::now()),
                                    std::chrono::milliseconds(1), std::chrono::milliseconds(5000));
    for (std::size_t i = 0; i < donors.size(); ++i)
      tasks.spawn(fetch_meta(node, donors[i].address, timeout, metas[i]));
    co_await tasks.wait();
  }
  std::vector<DonorAnswer> answers;
  answers.reserve(donors.size());
  for (std::size_t i = 0; i < donors.size(); ++i)
    answers.push_back({donors[i].address, std::move(metas[i])});
  co_return answers;
}

}  // namespace

asio::awaitable<StateSnapshot> download_state(rpc::RpcNode& node, GroupKeyStore& store,
                                              DownloadOptions options, DownloadStats* stats,
                                              Clock clock) {
  const auto answers = co_await ask_donors(node, store, options, clock);
  static const DonorBans kNoBans;
  const VoteRules rules{options.expected_sizes, options.min_epoch, options.max_epoch};
  const DonorChoice choice = choose_donors(answers, rules, options.bans ? *options.bans : kNoBans);
  // Filled as the download goes, so that a failed one reports what it saw too.
  DownloadStats unreported;
  DownloadStats& out = stats != nullptr ? *stats : unreported;
  out = {};
  auto ban = [&](const PeerId& peer) {
    if (options.bans != nullptr && options.bans->insert(peer).second) ++out.donors_banned;
  };
  for (std::size_t i : choice.banned) ban(answers[i].address.peer);
  out.donors_refused = choice.refused;
  if (!choice.reference) throw Error(Errc::unavailable, "state download: " + choice.refusal);

  auto d = std::make_shared<Download>(node.get_executor());
  d->meta = *answers[*choice.reference].meta;
  d->table = chunk_table(d->meta.sizes, d->meta.chunk_elements);
  d->result.epoch = d->meta.epoch;
  d->result.metadata = d->meta.metadata;
  for (std::size_t size : d->meta.sizes) d->result.tensors.emplace_back(size);
  for (std::size_t i = 0; i < d->table.size(); ++i) d->queue.push_back(i);
  {
    TaskGroup pullers(node.get_executor());
    for (std::size_t i : choice.chosen)
      pullers.spawn(pull_from(node, answers[i].address, d, options.deadline));
    co_await pullers.wait();
  }
  for (const auto& liar : d->liars) ban(liar);
  if (d->poisoned) {
    for (std::size_t i : choice.chosen) ban(answers[i].address.peer);
  }
  out.donors_used = choice.chosen.size();
  out.chunks = d->table.size();
  out.retries = d->retries;
  if (d->poisoned)
    throw Error(Errc::bad_message, "state download: the state of epoch " +
                                       std::to_string(d->meta.epoch) + " that " +
                                       std::to_string(choice.chosen.size()) +
                                       " donor(s) announced holds a non-finite value");
  if (d->done < d->table.size())
    throw Error(Errc::unavailable, "state download: " + std::to_string(d->table.size() - d->done) +
                                       " chunks could not be fetched from any donor");
  co_return std::move(d->result);
}

}  // namespace apiary::averaging
