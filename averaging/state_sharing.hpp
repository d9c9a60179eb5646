#pragma once
// State download for new and lagging peers.
//
// Donors (StateDonor) serve a snapshot — an epoch, opaque metadata and fp32
// tensors — over two unary methods: "averaging.state.meta" (epoch, metadata,
// tensor sizes, chunk size, BLAKE2b-256 hash of every chunk) and
// "averaging.state.chunk" (one chunk's raw fp32 bytes), and announce
// themselves under "<prefix>/state" in a GroupKeyStore (the DHT).
// download_state() asks every announced donor for its metadata, keeps only the
// donors at the newest epoch that agree on the chunk hashes (older donors are
// refused), then pulls chunks from all of them at once, verifies each chunk's
// hash and retries a failed or corrupt chunk from another donor.
//
// Threading: both run on the RpcNode's executor. Errors: download_state()
// throws apiary::Error{unavailable} when no usable donor is found or the
// chunks cannot all be fetched by the deadline.
#include "averaging/group_key_store.hpp"
#include "core/clock.hpp"
#include "net/rpc.hpp"

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace apiary::averaging {

struct StateSnapshot {
  std::uint64_t epoch = 0;
  Bytes metadata;
  std::vector<std::vector<float>> tensors;
};

class StateDonor {
 public:
  // Registers the state methods on `node`. chunk_elements: fp32 values per chunk.
  // `clock` (steady) times the busy window.
  StateDonor(rpc::RpcNode& node, std::size_t chunk_elements = 1u << 18, Clock clock = {});
  // Replaces the snapshot served (hashes are computed here, on the caller's thread).
  void publish(StateSnapshot snapshot);
  // Serves snapshots taken on demand instead (call on the node's thread): a
  // metadata request takes a fresh one from `provider` on the node's thread
  // (nullopt: nothing to serve, the request fails) — unless a download may
  // still be fetching chunks of the current one (a request was served in the
  // last `busy_window`), so a joiner never gets chunks newer than its hashes.
  // An empty provider stops serving (until the next publish()).
  void serve_on_demand(std::function<std::optional<StateSnapshot>()> provider,
                       std::chrono::milliseconds busy_window = std::chrono::milliseconds(250));
  // Declares this donor under "<prefix>/state" until `expiration` (system seconds).
  asio::awaitable<bool> announce(GroupKeyStore& store, const std::string& prefix,
                                 double expiration);
  // Chunk requests served so far (for tests and metrics).
  std::size_t chunks_served() const noexcept;

  struct State;

 private:
  rpc::RpcNode& node_;
  std::shared_ptr<State> state_;
};

struct DownloadStats {
  std::size_t donors_used = 0;
  std::size_t donors_refused = 0;  // older epoch or disagreeing hashes
  std::size_t chunks = 0;
  std::size_t retries = 0;  // chunks fetched again after a failure or bad hash
};

asio::awaitable<StateSnapshot> download_state(rpc::RpcNode& node, GroupKeyStore& store,
                                              std::string prefix, Deadline deadline,
                                              DownloadStats* stats = nullptr, Clock clock = {});

}  // namespace apiary::averaging
