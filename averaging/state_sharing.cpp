#include "averaging/state_sharing.hpp"

#include "core/async.hpp"
#include "core/codec.hpp"
#include "core/error.hpp"
#include "core/hash.hpp"
#include "core/log.hpp"

#include <algorithm>
#include <cstring>
#include <deque>

namespace apiary::averaging {
namespace {

using async::Signal;
using async::TaskGroup;

constexpr std::string_view kMetaMethod = "averaging.state.meta";
constexpr std::string_view kChunkMethod = "averaging.state.chunk";
constexpr std::uint64_t kStateVersion = 2;
constexpr std::size_t kMaxMetadataBytes = 1u << 20;
constexpr std::size_t kMaxTensors = 1u << 16;
constexpr std::uint64_t kMaxStateElements = 1ull << 30;  // 4 GiB of fp32
constexpr std::uint64_t kMaxChunkElements = 1u << 22;    // 16 MiB chunks at most
// One 32-byte hash per chunk of the largest state in the smallest chunks.
constexpr std::size_t kMaxHashBytes = 32u << 20;

struct ChunkRef {
  std::size_t tensor;
  std::size_t offset;
  std::size_t count;
};

// Chunks never span tensors; both sides derive the same table.
std::vector<ChunkRef> chunk_table(const std::vector<std::size_t>& sizes, std::size_t chunk) {
  std::vector<ChunkRef> table;
  for (std::size_t t = 0; t < sizes.size(); ++t)
    for (std::size_t offset = 0; offset < sizes[t]; offset += chunk)
      table.push_back({t, offset, std::min(chunk, sizes[t] - offset)});
  return table;
}

ByteSpan bytes_of(std::span<const float> values) {
  return {reinterpret_cast<const std::uint8_t*>(values.data()), values.size_bytes()};
}

struct Meta {
  std::uint64_t epoch = 0;
  Bytes metadata;
  std::vector<std::size_t> sizes;
  std::size_t chunk_elements = 0;
  std::vector<Hash256> hashes;
  bool same_content(const Meta& other) const {
    return epoch == other.epoch && sizes == other.sizes && chunk_elements == other.chunk_elements &&
           hashes == other.hashes && metadata == other.metadata;
  }
};

// Metadata on the wire: [version, epoch, metadata, [tensor sizes…],
// chunk elements, hashes (32 bytes per chunk, concatenated)].
Meta decode_meta(ByteSpan in) {
  const auto doc = codec::parse(in);
  auto fields = doc.root().array("state.meta", 6, 6);
  if (fields.next().uint("state.version") != kStateVersion)
    throw Error(Errc::bad_message, "unknown state version");
  Meta meta;
  meta.epoch = fields.next().uint("state.epoch");
  const ByteSpan metadata = fields.next().bin("state.metadata", kMaxMetadataBytes);
  meta.metadata.assign(metadata.begin(), metadata.end());
  auto sizes = fields.next().array("state.sizes", 0, kMaxTensors);
  std::uint64_t total = 0;
  while (!sizes.done()) {
    const std::uint64_t size = sizes.next().uint("state.size");
    total += size;
    if (size > kMaxStateElements || total > kMaxStateElements)
      throw Error(Errc::bad_message, "state too large");
    meta.sizes.push_back(static_cast<std::size_t>(size));
  }
  const std::uint64_t chunk = fields.next().uint("state.chunk_elements");
  if (chunk == 0 || chunk > kMaxChunkElements) throw Error(Errc::bad_message, "bad chunk size");
  meta.chunk_elements = static_cast<std::size_t>(chunk);
  const std::size_t count = chunk_table(meta.sizes, meta.chunk_elements).size();
  const ByteSpan hashes = fields.next().bin("state.hashes", kMaxHashBytes);
  if (hashes.size() != count * sizeof(Hash256))
    throw Error(Errc::bad_message, "chunk count does not match the tensor sizes");
  for (std::size_t i = 0; i < count; ++i) {
    Hash256 h;
    std::memcpy(h.data(), hashes.data() + i * h.size(), h.size());
    meta.hashes.push_back(h);
  }
  return meta;
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
  if (chunk_elements == 0 || chunk_elements > kMaxChunkElements)
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
  Bytes hashes;
  hashes.reserve(table.size() * sizeof(Hash256));
  for (const auto& c : table) {
    const auto values =
        std::span<const float>(snapshot.tensors[c.tensor]).subspan(c.offset, c.count);
    const Hash256 h = hash256(bytes_of(values));
    hashes.insert(hashes.end(), h.begin(), h.end());
  }
  codec::Writer w;
  w.array(6).uint(kStateVersion).uint(snapshot.epoch).bin(snapshot.metadata);
  w.array(static_cast<std::uint32_t>(sizes.size()));
  for (std::size_t s : sizes) w.uint(s);
  w.uint(chunk_elements).bin(hashes);
  Bytes meta = w.take();
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
  Meta meta;
  std::vector<ChunkRef> table;
  std::deque<std::size_t> queue;
  std::size_t in_flight = 0;
  std::size_t done = 0;
  std::size_t retries = 0;
  StateSnapshot result;
  Signal changed;
};

asio::awaitable<void> fetch_meta(rpc::RpcNode& node, PeerAddress donor,
                                 std::chrono::milliseconds timeout, std::optional<Meta>& out) {
  try {
    rpc::CallOptions options;
    options.timeout = timeout;
    Bytes empty;
    Bytes answer = co_await node.call(donor, kMetaMethod, std::move(empty), options);
    out = decode_meta(answer);
  } catch (const std::exception& e) {
    log::debug("state download: donor {} gave no metadata: {}", donor.to_string(), e.what());
  }
}

// Pulls chunks from one donor until none are left or the donor fails.
asio::awaitable<void> pull_from(rpc::RpcNode& node, PeerAddress donor, std::shared_ptr<Download> d,
                                Deadline deadline) {
  while (d->done < d->table.size() && SteadyClock::now() < deadline) {
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
      if (raw.size() == c.count * sizeof(float) && hash256(raw) == d->meta.hashes[index]) {
        std::memcpy(d->result.tensors[c.tensor].data() + c.offset, raw.data(), raw.size());
        ok = true;
      } else {
        log::debug("state download: donor {} sent a bad chunk {}", donor.to_string(), index);
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

}  // namespace

asio::awaitable<StateSnapshot> download_state(rpc::RpcNode& node, GroupKeyStore& store,
                                              std::string prefix, Deadline deadline,
                                              DownloadStats* stats, Clock clock) {
  auto donors = co_await store.list(prefix + "/state", clock.wall_now());
  std::erase_if(donors, [&](const Declaration& d) { return d.address.peer == node.peer_id(); });
  // Metadata from every donor at once.
  std::vector<std::optional<Meta>> metas(donors.size());
  {
    TaskGroup tasks(node.get_executor());
    const auto timeout = std::clamp(
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - SteadyClock::now()),
        std::chrono::milliseconds(1), std::chrono::milliseconds(5000));
    for (std::size_t i = 0; i < donors.size(); ++i)
      tasks.spawn(fetch_meta(node, donors[i].address, timeout, metas[i]));
    co_await tasks.wait();
  }
  // Newest epoch wins; among its donors, the content most of them agree on.
  std::optional<std::uint64_t> newest;
  for (const auto& m : metas)
    if (m && (!newest || m->epoch > *newest)) newest = m->epoch;
  if (!newest) throw Error(Errc::unavailable, "state download: no donor answered");
  std::size_t reference = metas.size();
  std::size_t best_votes = 0;
  for (std::size_t i = 0; i < metas.size(); ++i) {
    if (!metas[i] || metas[i]->epoch != *newest) continue;
    std::size_t votes = 0;
    for (const auto& other : metas) votes += other && other->same_content(*metas[i]);
    if (votes > best_votes) {
      best_votes = votes;
      reference = i;
    }
  }
  std::vector<PeerAddress> chosen;
  DownloadStats local_stats;
  for (std::size_t i = 0; i < metas.size(); ++i) {
    if (metas[i] && metas[i]->same_content(*metas[reference])) {
      chosen.push_back(donors[i].address);
    } else if (metas[i]) {
      ++local_stats.donors_refused;  // older epoch, or content the majority disagrees with
    }
  }

  auto d = std::make_shared<Download>(node.get_executor());
  d->meta = *metas[reference];
  d->table = chunk_table(d->meta.sizes, d->meta.chunk_elements);
  d->result.epoch = d->meta.epoch;
  d->result.metadata = d->meta.metadata;
  for (std::size_t size : d->meta.sizes) d->result.tensors.emplace_back(size);
  for (std::size_t i = 0; i < d->table.size(); ++i) d->queue.push_back(i);
  {
    TaskGroup pullers(node.get_executor());
    for (const auto& donor : chosen) pullers.spawn(pull_from(node, donor, d, deadline));
    co_await pullers.wait();
  }
  local_stats.donors_used = chosen.size();
  local_stats.chunks = d->table.size();
  local_stats.retries = d->retries;
  if (stats) *stats = local_stats;
  if (d->done < d->table.size())
    throw Error(Errc::unavailable, "state download: " + std::to_string(d->table.size() - d->done) +
                                       " chunks could not be fetched from any donor");
  co_return std::move(d->result);
}

}  // namespace apiary::averaging
