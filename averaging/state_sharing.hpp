#pragma once
// State download for new and lagging peers.
//
// Donors (StateDonor) serve a snapshot — an epoch, opaque metadata and fp32
// tensors — over two unary methods: "averaging.state.meta" (epoch, metadata,
// tensor sizes, chunk size, BLAKE2b-256 hash of every chunk) and
// "averaging.state.chunk" (one chunk's raw fp32 bytes), and announce
// themselves under "<prefix>/state" in a GroupKeyStore (the DHT).
// download_state() asks every announced donor for its metadata and lets them
// vote (averaging/state_vote.hpp): the epoch a majority has reached, the
// content most donors at that epoch announce, sizes checked against the run's
// model before anything is allocated. It then pulls chunks from every donor of
// that content at once, verifies each chunk's hash and that its values are
// finite, and retries a failed chunk from another donor. A donor that lies (a
// chunk not matching the hashes it announced, sizes not the model's, content
// a majority contradicts) is banned in DownloadOptions::bans for the run.
//
// Threading: both run on the RpcNode's executor. Errors: download_state()
// throws apiary::Error{unavailable} when no usable donor is found or the
// chunks cannot all be fetched by the deadline, Error{bad_message} when the
// state the donors agreed on holds a non-finite value (they are all banned).
#include "averaging/group_key_store.hpp"
#include "averaging/state_vote.hpp"
#include "core/clock.hpp"
#include "net/rpc.hpp"

#include <chrono>
#include <cstdint>
#include <functional>
#include <limits>
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

struct DownloadOptions {
  DownloadOptions(std::string prefix, Deadline deadline)
      : prefix(std::move(prefix)), deadline(deadline) {}
  std::string prefix;  // donors are declared under "<prefix>/state"
  Deadline deadline;
  std::vector<std::size_t> expected_sizes;  // the run's model (empty: take the donors')
  DonorBans* bans = nullptr;                // refused donors, kept by the caller for the run
  // Donors outside [min_epoch, max_epoch] do not vote (see VoteRules).
  std::uint64_t min_epoch = 0;
  std::uint64_t max_epoch = std::numeric_limits<std::uint64_t>::max();
};

struct DownloadStats {
  std::size_t donors_used = 0;
  std::size_t donors_refused = 0;  // another epoch, disagreeing content, banned, wrong sizes
  std::size_t donors_banned = 0;   // by this download
  std::size_t chunks = 0;
  std::size_t retries = 0;  // chunks fetched again after a failure or bad hash
};

asio::awaitable<StateSnapshot> download_state(rpc::RpcNode& node, GroupKeyStore& store,
                                              DownloadOptions options,
                                              DownloadStats* stats = nullptr, Clock clock = {});

}  // namespace apiary::averaging
