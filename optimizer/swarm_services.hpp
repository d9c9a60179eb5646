#pragma once
// What the collaborative optimizer needs from the swarm, as a narrow interface.
//
// The optimizer's logic (when to average, what to do when averaging fails,
// when to catch up) is written against this interface so it can be tested
// with an in-memory fake (tests/optimizer) and run over the real network
// through optimizer/network_swarm.hpp (DHT progress tracker, matchmaking,
// butterfly all-reduce, state download). Every method may be called from the training
// thread; implementations hand network work to their own thread.
// Errors: none thrown for remote failures — they come back as outcomes.
#include "optimizer/progress_estimate.hpp"

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace apiary::optimizer {

// What a round averages: the codec follows (run config compression.gradients
// or compression.state), and so may other choices of an implementation.
enum class RoundKind { gradients, state };

// A round this peer will average at its coming epoch boundary.
struct RoundPlan {
  std::string group_key;
  std::vector<std::size_t> sizes;  // of the tensors average() will get
  RoundKind kind = RoundKind::gradients;
};

struct AveragingOutcome {
  bool ok = false;
  std::size_t group_size = 1;  // peers whose contribution is in the result (incl. this one)
  std::vector<std::string> failed_peers;
  std::uint64_t bytes_sent = 0;
  std::uint64_t bytes_received = 0;
  double seconds = 0;  // matchmaking + all-reduce
  std::string error;   // why it failed, when !ok
};

// Everything a late joiner needs to resume: parameters, optimizer statistics
// and counters, in a fixed order agreed by the run configuration (local-update
// mode appends the outer optimizer's anchor and momentum).
struct StateSnapshot {
  std::uint64_t epoch = 0;
  std::uint64_t optimizer_steps = 0;
  std::vector<std::vector<float>> tensors;  // [params, optimizer state buffers…]
};

class SwarmServices {
 public:
  virtual ~SwarmServices() = default;

  // Publishes this peer's progress (asynchronously; returns at once).
  virtual void report_progress(const PeerProgress& local) = 0;
  // The newest estimate of the swarm's progress (refreshed in the background
  // on the estimate's own schedule; never blocks on the network).
  virtual GlobalProgress global_progress(std::uint64_t local_epoch) = 0;
  // Averages `tensors` in place with whoever averages under `group_key`,
  // weighted by `weight` (0: take the average without contributing). Blocks
  // until done or `timeout`; on failure the tensors keep their local values.
  // `kind` picks the compression: optimizer statistics (Adam's second moments
  // are ~1e-10) must not go through a gradient codec.
  virtual AveragingOutcome average(const std::string& group_key,
                                   std::vector<std::span<float>> tensors, float weight,
                                   std::chrono::duration<double> timeout, RoundKind kind) = 0;
  // Matchmaking ahead of time: finds the groups of `rounds` in the background
  // while this peer still computes, and holds them until this peer averages
  // under their key (average() then starts the group at once) or, where
  // another peer leads, until that peer starts the round (round_started()).
  // A key prepared already is left as it is. The default does nothing:
  // average() then matches on the spot.
  virtual void prepare_rounds(std::vector<RoundPlan> rounds,
                              std::chrono::duration<double> timeout) {
    (void)rounds;
    (void)timeout;
  }
  // This peer will not average under these prepared keys after all (its
  // epoch moved on differently): groups it leads there are disbanded.
  virtual void abandon_rounds(std::vector<std::string> group_keys) { (void)group_keys; }
  // Whether another peer started the round prepared under `group_key`: this
  // peer should end its epoch and average now.
  virtual bool round_started(const std::string& group_key) {
    (void)group_key;
    return false;
  }
  // Downloads the newest state with epoch ≥ min_epoch from peers; nullopt if none.
  virtual std::optional<StateSnapshot> download_state(std::uint64_t min_epoch,
                                                      std::chrono::duration<double> timeout) = 0;
  // Offers this peer's state to joiners; `snapshot` is called on demand (any thread).
  virtual void serve_state(std::function<StateSnapshot()> snapshot) = 0;
};

}  // namespace apiary::optimizer
