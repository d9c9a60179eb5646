#include "optimizer/state_sharing.hpp"

#include "core/codec.hpp"
#include "core/hash.hpp"
#include "core/log.hpp"
#include "dht/validator.hpp"
#include "optimizer/progress_tracker.hpp"

#include <algorithm>
#include <cstring>
#include <mutex>

namespace apiary::optimizer {

namespace {

constexpr std::size_t kChunkBytes = 1u << 20;
constexpr std::size_t kMaxTensors = 64;
constexpr std::uint64_t kMaxElements = 1ull << 31;

Bytes donors_key(const std::string& run) {
  const std::string k = run + ".donors";
  return Bytes(k.begin(), k.end());
}

Hash256 hash_tensors(const std::vector<std::vector<float>>& tensors) {
  Hasher h(32);
  for (const auto& t : tensors) {
    h.update(ByteSpan(reinterpret_cast<const std::uint8_t*>(t.data()), t.size() * sizeof(float)));
  }
  return h.finalize256();
}

}  // namespace

struct StateServer::Shared {
  std::mutex mutex;
  std::function<StateSnapshot()> snapshot;
};

StateServer::StateServer(rpc::RpcNode& rpc) : shared_(std::make_shared<Shared>()) {
  rpc.add_stream_method(std::string(kStateMethod),
                        [shared = shared_](const rpc::RequestContext& ctx,
                                           rpc::StreamPtr stream) -> asio::awaitable<void> {
                          std::function<StateSnapshot()> snapshot;
                          {
                            std::lock_guard lock(shared->mutex);
                            snapshot = shared->snapshot;
                          }
                          if (!snapshot) {
                            stream->cancel();
                            co_return;
                          }
                          const StateSnapshot state = snapshot();
                          codec::Writer header;
                          header.array(static_cast<std::uint32_t>(3 + state.tensors.size()));
                          header.uint(state.epoch).uint(state.optimizer_steps);
                          for (const auto& t : state.tensors) header.uint(t.size());
                          const Hash256 digest = hash_tensors(state.tensors);
                          header.bin(digest);
                          co_await stream->write(header.take());
                          for (const auto& t : state.tensors) {
                            const auto* bytes = reinterpret_cast<const std::uint8_t*>(t.data());
                            const std::size_t total = t.size() * sizeof(float);
                            for (std::size_t off = 0; off < total; off += kChunkBytes) {
                              const std::size_t n = std::min(kChunkBytes, total - off);
                              co_await stream->write(Bytes(bytes + off, bytes + off + n));
                            }
                          }
                          co_await stream->close_write();
                          log::debug("sent state of epoch {} to {}", state.epoch,
                                     ctx.peer.to_string());
                        });
}

void StateServer::set_snapshot(std::function<StateSnapshot()> snapshot) {
  std::lock_guard lock(shared_->mutex);
  shared_->snapshot = std::move(snapshot);
}

bool StateServer::serving() const {
  std::lock_guard lock(shared_->mutex);
  return static_cast<bool>(shared_->snapshot);
}

asio::awaitable<bool> StateServer::announce(dht::DhtNode& dht, const PublicKey& own_key,
                                            const std::string& run, std::uint64_t epoch,
                                            double ttl_seconds) {
  const std::string marker = dht::OwnerSignatureValidator::owner_marker(own_key);
  codec::Writer w;
  w.array(2).uint(epoch).str(dht.address().to_string());
  auto result = co_await dht.store(donors_key(run), Bytes(marker.begin(), marker.end()), w.take(),
                                   dht::system_dht_time() + ttl_seconds);
  co_return result.ok();
}

namespace {

struct Donor {
  std::uint64_t epoch;
  PeerAddress address;
};

// One attempt from one donor; nullopt (and a log line) on any fault.
asio::awaitable<std::optional<StateSnapshot>> download_from(
    rpc::RpcNode& rpc, const Donor& donor, std::uint64_t min_epoch,
    const std::vector<std::size_t>& expected_sizes, std::chrono::milliseconds timeout) {
  try {
    auto stream = co_await rpc.open_stream(donor.address, kStateMethod, {timeout});
    co_await stream->close_write();
    auto header_bytes = co_await stream->read(timeout);
    if (!header_bytes) throw Error(Errc::bad_message, "no header");
    auto doc = codec::parse(*header_bytes);
    auto header = doc.root().array("state.header", 3, 3 + kMaxTensors);
    StateSnapshot state;
    state.epoch = header.next().uint("state.epoch");
    state.optimizer_steps = header.next().uint("state.steps");
    std::vector<std::size_t> sizes;
    while (header.remaining() > 1) sizes.push_back(header.next().uint("state.size", kMaxElements));
    Hash256 expected_digest;
    auto digest = header.next().bin("state.hash", 32, 32);
    std::copy(digest.begin(), digest.end(), expected_digest.begin());
    if (state.epoch < min_epoch) {
      log::info("state donor {} is at epoch {}, older than {}: skipped", donor.address.to_string(),
                state.epoch, min_epoch);
      stream->cancel();
      co_return std::nullopt;
    }
    if (!expected_sizes.empty() && sizes != expected_sizes) {
      throw Error(Errc::bad_message, "tensor sizes do not match this model");
    }
    for (std::size_t size : sizes) {
      std::vector<float> tensor(size);
      auto* out = reinterpret_cast<std::uint8_t*>(tensor.data());
      std::size_t received = 0;
      const std::size_t total = size * sizeof(float);
      while (received < total) {
        auto chunk = co_await stream->read(timeout);
        if (!chunk) throw Error(Errc::bad_message, "stream ended early");
        if (chunk->size() > total - received || chunk->size() > kChunkBytes)
          throw Error(Errc::bad_message, "chunk larger than announced");
        std::memcpy(out + received, chunk->data(), chunk->size());
        received += chunk->size();
      }
      state.tensors.push_back(std::move(tensor));
    }
    if (hash_tensors(state.tensors) != expected_digest)
      throw Error(Errc::bad_message, "hash mismatch");
    co_return state;
  } catch (const Error& e) {
    log::warn("state download from {} failed: {}", donor.address.to_string(), e.what());
    co_return std::nullopt;
  }
}

}  // namespace

asio::awaitable<std::optional<StateSnapshot>> download_state(
    dht::DhtNode& dht, rpc::RpcNode& rpc, const std::string& run, std::uint64_t min_epoch,
    std::vector<std::size_t> expected_sizes, std::chrono::milliseconds timeout) {
  auto found = co_await dht.get(donors_key(run), /*latest=*/true);
  std::vector<Donor> donors;
  const double now = dht::system_dht_time();
  if (found && found->is_dictionary) {
    for (const auto& [subkey, entry] : found->subkeys) {
      if (entry.expiration <= now || !ProgressTracker::owner_of(subkey)) continue;
      try {
        auto doc = codec::parse(entry.value);
        auto a = doc.root().array("donor", 2, 2);
        Donor d{a.next().uint("donor.epoch"),
                PeerAddress::parse(a.next().str("donor.address", 512))};
        // The signed subkey names the owner; the address must be that peer's.
        if (d.address.peer != *ProgressTracker::owner_of(subkey) || d.address.peer == rpc.peer_id())
          continue;
        if (d.epoch >= min_epoch) donors.push_back(std::move(d));
      } catch (const Error&) {
        continue;  // a malformed announcement: skip that donor only
      }
    }
  }
  std::stable_sort(donors.begin(), donors.end(),
                   [](const Donor& a, const Donor& b) { return a.epoch > b.epoch; });
  for (const auto& donor : donors) {
    auto state = co_await download_from(rpc, donor, min_epoch, expected_sizes, timeout);
    if (state) co_return state;
  }
  co_return std::nullopt;
}

}  // namespace apiary::optimizer
