#pragma once
// The one way to run an averaging round — for `apiary average` (Averager), the
// optimizer (optimizer/network_swarm) and the benchmarks: find a group through
// a GroupSource, average with it over the AllReduceService, report a
// StepResult (and the round metrics below).
//
// Rounds matched ahead of time (PreparedRound): matchmaking starts while this
// peer still computes and the leader holds the group; run_round() releases it
// and takes the group when this peer averages. If that group is gone (it
// started without this peer, or its tensors changed) the round matches again
// at once under "<key>/retry", with whoever else missed it.
//
// Threading: everything runs on the node's executor except
// PreparedRound::started(), which any thread may read.
// Metrics (global registry): apiary_averaging_rounds_total,
// apiary_averaging_rounds_failed_total (no group), apiary_averaging_failed_peers_total,
// apiary_averaging_bytes_sent_total, apiary_averaging_bytes_received_total,
// apiary_averaging_round_seconds.
// Errors: faults of other peers never throw (StepResult::error says why no
// part was averaged); misuse throws apiary::Error{invalid_argument}.
#include "averaging/butterfly.hpp"
#include "averaging/group_source.hpp"
#include "core/async.hpp"
#include "core/clock.hpp"

#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace apiary::averaging {

// A round's outcome: the all-reduce's (group_size 1 when no group formed: the
// buffers are untouched) plus what the runner adds.
struct StepResult : AllReduceResult {
  StepResult() { group_size = 1; }
  double seconds = 0;  // matchmaking + all-reduce
  std::string error;   // why no part was averaged (empty when one was)
  bool ok() const noexcept { return chunks_averaged > 0; }
};

struct RoundRequest {
  float weight = 1.0f;  // this peer's (0: take the average without contributing)
  TensorSet tensors{std::vector<std::span<float>>{}};
  std::optional<TensorSet> residuals;  // error feedback state, when enabled
  AllReduceOptions allreduce;
  Deadline deadline;
};

// Hash of the tensor sizes and the compression policy: peers average together
// only when it matches.
std::uint64_t schema_hash(std::span<const std::size_t> tensor_sizes,
                          const CompressionPolicy& policy);

// A round matched ahead of time (see above).
class PreparedRound : public std::enable_shared_from_this<PreparedRound> {
 public:
  PreparedRound(std::string key, std::uint64_t schema) : key_(std::move(key)), schema_(schema) {}
  const std::string& key() const noexcept { return key_; }
  std::uint64_t schema() const noexcept { return schema_; }
  // Whether its group started (this peer is in it; another peer may have
  // started it): any thread.
  bool started() const noexcept { return started_.load(); }
  bool begun() const noexcept { return source_ != nullptr; }
  bool cancelled() const noexcept { return cancelled_; }

  // Starts matchmaking through `source` (the leader holds the group).
  void begin(asio::any_io_executor executor, std::unique_ptr<GroupSource> source,
             Deadline deadline);
  // This peer will not average under the key: disbands what it leads; a round
  // not begun yet never begins.
  void cancel();
  // Releases the held group and waits for it (nullopt: none by `deadline`, or
  // the tensors' schema changed since the round was prepared — abandoned then).
  asio::awaitable<std::optional<GroupInfo>> take_group(std::uint64_t schema, Deadline deadline);

 private:
  asio::awaitable<void> match(std::shared_ptr<PreparedRound> self, Deadline deadline);

  std::string key_;
  std::uint64_t schema_;
  std::unique_ptr<GroupSource> source_;
  std::optional<GroupInfo> group_;
  bool finished_ = false;
  bool cancelled_ = false;
  std::optional<async::Signal> done_;
  std::atomic<bool> started_{false};
};

// One round with `groups`.
asio::awaitable<StepResult> run_round(AllReduceService& service, GroupSource& groups,
                                      RoundRequest request);

// Where a round's group comes from when it is matched on the spot (the key:
// the round's own or its "/retry" key).
using GroupSourceFor = std::function<std::unique_ptr<GroupSource>(const std::string& key)>;

// One round under `key`: its prepared group if it has one, else a group
// matched now (under "<key>/retry" after a prepared round that failed).
asio::awaitable<StepResult> run_round(AllReduceService& service, const std::string& key,
                                      std::shared_ptr<PreparedRound> prepared,
                                      const GroupSourceFor& groups, RoundRequest request);

}  // namespace apiary::averaging
