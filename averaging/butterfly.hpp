#pragma once
// Butterfly all-reduce over RPC streams, for a group that is already agreed
// (ordered members, weights, bandwidths, schema hash — see matchmaking).
//
// The flattened tensors are cut into one part per member (load_balancing.hpp,
// partition.hpp). For every other member r that owns a non-empty part, a
// peer opens one stream "averaging.allreduce" to r, streams r's part of its
// local tensors chunk by chunk and reads back the averaged chunks on the same
// stream (so client-mode peers, which nobody can dial, only ever dial out).
// As a reducer, a peer accumulates each chunk once every sender delivered it
// (sender order, see reducer.hpp) and sends the result back at once, so
// reduce-scatter and all-gather overlap chunk by chunk. The reducer applies the
// same encode→decode to its own copy, so every survivor holds bit-identical
// values for every part whose reducer stayed alive.
//
// Faults: a sender that is silent for `sender_timeout`, sends garbage, or
// presents the wrong schema is excluded (its stream is reset). A reducer that
// fails leaves its part with the local values. At the round deadline every
// stream is reset, so run() always completes by then (plus compute already
// under way).
//
// Threading: AllReduceService and run() live on the RpcNode's executor.
// Encoding, reduction and decoding of chunks of 64 KiB or more run on
// AllReduceOptions::compute (a worker pool) when given; smaller ones inline. Errors: run() throws
// apiary::Error{invalid_argument} for a group this peer is not in or that does not match the
// tensors; faults of other peers never throw — they are reported in AllReduceResult.
#include "averaging/compression.hpp"
#include "averaging/partition.hpp"
#include "averaging/stream_wire.hpp"
#include "core/clock.hpp"
#include "net/address.hpp"
#include "net/rpc.hpp"

#include <asio/any_io_executor.hpp>
#include <asio/awaitable.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

namespace apiary::averaging {

inline constexpr std::string_view kAllReduceMethod = "averaging.allreduce";
// Wire protocol of one stream: stream_wire.hpp.

struct GroupMember {
  PeerAddress address;
  // e.g. samples accumulated; 0 tags along. Only this peer's own entry is
  // used: each sender's weight travels in its stream header, so whoever forms
  // the group need not know the others' weights.
  float weight = 1.0f;
  double bandwidth = 1.0;  // relative; 0 = client mode (owns no part)
  bool auxiliary = false;  // reduces a part but has no tensors to contribute
};

struct GroupInfo {
  Bytes group_id;                    // unique per round, ≤ kMaxGroupIdBytes
  std::uint64_t schema_hash = 0;     // tensor sizes + codecs; must match on every peer
  std::vector<GroupMember> members;  // agreed order (the reduction order)
};

struct AllReduceOptions {
  // Largest chunk. Smaller chunks are used when parts are small, so that each
  // part has about `min_chunks_per_part` chunks and reduction, sending and the
  // return of results overlap (with 4 chunks per part the pipeline fill alone
  // costs ~25 % of the round). Must be equal on every peer of a group.
  std::size_t chunk_elements = PartitionPlan::default_chunk_elements;
  std::size_t min_chunk_elements = 4096;
  std::size_t min_chunks_per_part = 32;
  std::size_t min_part_elements = 0;
  CompressionPolicy compression;
  // A sender that has neither connected nor sent anything for this long is excluded.
  std::chrono::milliseconds sender_timeout{5000};
  std::chrono::milliseconds connect_timeout{5000};
  // Where encode/reduce/decode run (a worker pool); nullopt runs them inline.
  std::optional<asio::any_io_executor> compute;
};

struct AllReduceResult {
  std::size_t group_size = 0;
  std::vector<PeerId> failed_peers;  // senders this peer excluded, reducers that failed it
  std::uint64_t bytes_sent = 0;      // stream payloads, both roles
  std::uint64_t bytes_received = 0;
  std::size_t chunks_averaged = 0;  // chunks of the local tensors that now hold an average
  std::size_t chunks_local = 0;     // chunks left with their local values
  bool deadline_hit = false;
};

// The chunk size a round of `members` peers over `total_elements` uses.
std::size_t effective_chunk_elements(const AllReduceOptions& options, std::size_t total_elements,
                                     std::size_t members);

// The per-round part sizes every member computes from the group info.
std::vector<std::size_t> group_part_sizes(const GroupInfo& group, std::size_t total_elements,
                                          std::size_t min_part_elements);

class AllReduceService {
 public:
  // Registers kAllReduceMethod on `node`; keep the service alive as long as the node runs.
  explicit AllReduceService(rpc::RpcNode& node);
  ~AllReduceService();
  AllReduceService(const AllReduceService&) = delete;
  AllReduceService& operator=(const AllReduceService&) = delete;

  // Averages `tensors` in place with the group. `residuals` (same shapes) hold
  // the error-feedback state when options.compression.error_feedback is set.
  asio::awaitable<AllReduceResult> run(GroupInfo group, TensorSet tensors,
                                       std::optional<TensorSet> residuals, AllReduceOptions options,
                                       Deadline deadline);
  // The peer this service runs rounds for (its entry in a group).
  const PeerId& peer_id() const;

  struct State;

 private:
  rpc::RpcNode& node_;
  std::shared_ptr<State> state_;
};

}  // namespace apiary::averaging
