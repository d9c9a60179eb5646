#pragma once
// One butterfly round from one peer's point of view (internal to averaging/):
// the state both halves share, the sender half (streams this peer's tensors
// to every reducer and reads back the averages, butterfly_sender.cpp) and the
// reducer half (reduces this peer's own part from every sender's stream and
// sends the results back, butterfly_reducer.cpp). AllReduceService runs a
// RoundHalves pair per round (butterfly.cpp). Everything lives on the node's
// executor; the halves' coroutines keep their half alive (shared_from_this).
#include "averaging/butterfly.hpp"
#include "averaging/reducer.hpp"
#include "core/async.hpp"
#include "core/clock.hpp"

#include <asio/any_io_executor.hpp>
#include <asio/awaitable.hpp>

#include <chrono>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace apiary::averaging::detail {

// Time left until `deadline`, capped, at least 1 ms (a zero timeout would mean "now").
std::chrono::milliseconds time_left(Deadline deadline, std::chrono::milliseconds cap);
inline constexpr std::chrono::milliseconds kNoCap{std::chrono::hours(24)};

// A chunk message with the stream's headroom in front (Stream::write_framed),
// sized for `payload_bytes` more so encoding appends without reallocating.
Bytes chunk_message(std::uint32_t index, Codec codec, std::size_t payload_bytes);
// Where the payload starts in a chunk message built by chunk_message().
std::size_t chunk_payload_offset();

// What both halves of a round read and report into.
struct RoundShared {
  RoundShared(asio::any_io_executor executor, rpc::RpcNode& node, GroupInfo group, std::size_t me,
              TensorSet tensors, std::optional<TensorSet> residuals, AllReduceOptions options,
              Deadline deadline);

  asio::any_io_executor executor;
  rpc::RpcNode& node;
  GroupInfo group;
  std::size_t me;
  TensorSet tensors;
  std::optional<TensorSet> residuals;
  AllReduceOptions options;
  Deadline deadline;
  Deadline started;
  PartitionPlan plan;
  std::vector<Codec> codecs;  // per tensor
  async::Signal changed;      // any state change below

  bool expired = false;  // the deadline passed: nothing more is delivered
  bool done = false;     // run() returned
  std::set<PeerId> failed;
  AllReduceResult result;

  bool is_auxiliary() const { return group.members[me].auxiliary; }
  const PeerId& peer_of(std::size_t index) const { return group.members[index].address.peer; }
  // Where to encode, reduce or decode a chunk of `elements`: small chunks take
  // less time than handing them to the pool and back (two thread hops, each a
  // wait for a CPU on a busy machine), so they stay on the network thread.
  const std::optional<asio::any_io_executor>& compute_for(std::size_t elements) const;
};

// Sender half: one stream per remote non-empty part.
class RoundSender : public std::enable_shared_from_this<RoundSender> {
 public:
  explicit RoundSender(std::shared_ptr<RoundShared> round);
  void start(async::TaskGroup& tasks);
  // The deadline passed: reset every outgoing stream.
  void expire();

 private:
  struct Progress {
    std::size_t sent = 0;  // chunks handed to the stream
    bool failed = false;
  };
  asio::awaitable<void> send_part(std::shared_ptr<RoundSender> self, std::size_t r);
  asio::awaitable<void> read_results(std::size_t r, rpc::StreamPtr stream, const Progress& progress,
                                     std::size_t& received);
  asio::awaitable<void> write_part(std::shared_ptr<RoundSender> self, std::size_t r,
                                   rpc::StreamPtr stream, std::shared_ptr<Progress> progress);

  std::shared_ptr<RoundShared> round_;
  std::vector<rpc::StreamPtr> outgoing_;
};

// Reducer half: exists only when this peer owns a non-empty part.
class RoundReducer : public std::enable_shared_from_this<RoundReducer> {
 public:
  explicit RoundReducer(std::shared_ptr<RoundShared> round);
  bool accepting() const noexcept { return !round_->expired && !round_->done; }
  // Adds this peer's own contribution and starts the watch for senders that never connect.
  void start(async::TaskGroup& tasks);
  // Serves one sender's stream (header already read and checked).
  asio::awaitable<void> serve_sender(std::size_t sender, float weight, rpc::StreamPtr stream);
  // Every chunk reduced and every handler ended.
  bool settled() const noexcept { return reducer_.finished() && jobs_ == 0 && handlers_ == 0; }
  // The deadline passed: exclude every sender still active and reset their streams.
  void expire();

 private:
  struct ResultSlot {
    enum State { pending, ready, empty } state = pending;
    std::shared_ptr<const Bytes> message;
  };
  struct SenderSlot {
    bool connected = false;
    rpc::StreamPtr stream;
  };
  // Counts a reducer-side task in handlers_ for as long as it lives.
  struct HandlerGuard {
    RoundReducer& half;
    explicit HandlerGuard(RoundReducer& h) : half(h) { ++half.handlers_; }
    ~HandlerGuard() {
      --half.handlers_;
      half.round_->changed.notify_all();
    }
  };

  void add_local_contribution();
  void exclude_sender(std::size_t sender, const std::string& why);
  void on_completed(const std::vector<std::size_t>& chunks);
  asio::awaitable<void> reduce_chunk(std::shared_ptr<RoundReducer> self, std::size_t c,
                                     ChunkInputs inputs);
  asio::awaitable<void> read_chunks(std::shared_ptr<RoundReducer> self, std::size_t sender,
                                    rpc::StreamPtr stream);
  asio::awaitable<void> write_results(std::shared_ptr<RoundReducer> self, std::size_t sender,
                                      rpc::StreamPtr stream);
  asio::awaitable<void> watch_connections(std::shared_ptr<RoundReducer> self);

  std::shared_ptr<RoundShared> round_;
  PartReducer reducer_;
  std::vector<ResultSlot> results_;
  std::vector<SenderSlot> senders_;
  std::size_t jobs_ = 0;
  std::size_t handlers_ = 0;
};

}  // namespace apiary::averaging::detail
