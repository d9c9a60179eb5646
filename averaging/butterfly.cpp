#include "averaging/butterfly.hpp"

#include "averaging/load_balancing.hpp"
#include "averaging/reducer.hpp"
#include "averaging/stream_wire.hpp"
#include "core/async.hpp"
#include "core/error.hpp"
#include "core/log.hpp"

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>

#include <algorithm>
#include <cmath>
#include <exception>
#include <map>
#include <set>
#include <string>

namespace apiary::averaging {
namespace {

using async::run_compute;
using async::Signal;
using async::TaskGroup;

// Chunks smaller than this are processed on the network thread (compute_for).
constexpr std::size_t kPoolChunkBytes = 64u << 10;
// Where the payload starts in a chunk message built by chunk_header().
constexpr std::size_t kPayloadOffset = rpc::kStreamHeadroom + kChunkHeaderBytes;

// A chunk message with the stream's headroom in front (Stream::write_framed),
// sized for `payload_bytes` more so encoding appends without reallocating.
Bytes chunk_header(std::uint32_t index, Codec codec, std::size_t payload_bytes) {
  Bytes message(rpc::kStreamHeadroom);
  message.reserve(rpc::kStreamHeadroom + kChunkHeaderBytes + payload_bytes);
  append_chunk_header(message, {index, codec});
  return message;
}

std::string key_of(ByteSpan group_id) {
  return std::string(as_string_view(group_id));
}

// Time left until `deadline`, capped, at least 1 ms (a zero timeout would mean "now").
std::chrono::milliseconds time_left(Deadline deadline, std::chrono::milliseconds cap) {
  // Rounded up, so a wait never ends just before the deadline it serves.
  const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - SteadyClock::now());
  return std::clamp(left, std::chrono::milliseconds{1},
                    std::max(cap, std::chrono::milliseconds{1}));
}

constexpr std::chrono::milliseconds kNoCap{std::chrono::hours(24)};

}  // namespace

std::size_t effective_chunk_elements(const AllReduceOptions& options, std::size_t total_elements,
                                     std::size_t members) {
  const std::size_t per_part =
      total_elements /
      std::max<std::size_t>(1, members * std::max<std::size_t>(1, options.min_chunks_per_part));
  return std::max<std::size_t>(
      1, std::min(options.chunk_elements, std::max(options.min_chunk_elements, per_part)));
}

std::vector<std::size_t> group_part_sizes(const GroupInfo& group, std::size_t total_elements,
                                          std::size_t min_part_elements) {
  std::vector<double> bandwidths;
  bandwidths.reserve(group.members.size());
  for (const auto& m : group.members) bandwidths.push_back(m.bandwidth);
  return balance_parts(total_elements, bandwidths, min_part_elements);
}

// ---------------------------------------------------------------------------
// One round, from one peer's point of view: sender of its tensors to every
// reducer, and reducer of its own part.
class Round : public std::enable_shared_from_this<Round> {
 public:
  Round(asio::any_io_executor executor, rpc::RpcNode& node, GroupInfo group, std::size_t me,
        TensorSet tensors, std::optional<TensorSet> residuals, AllReduceOptions options,
        Deadline deadline)
      : executor_(executor),
        node_(node),
        group_(std::move(group)),
        me_(me),
        tensors_(std::move(tensors)),
        residuals_(std::move(residuals)),
        options_(std::move(options)),
        deadline_(deadline),
        started_(SteadyClock::now()),
        plan_(tensors_.sizes(),
              group_part_sizes(group_, total_of(tensors_), options_.min_part_elements),
              effective_chunk_elements(options_, total_of(tensors_), group_.members.size())),
        changed_(executor),
        outgoing_(group_.members.size()) {
    for (std::size_t t = 0; t < tensors_.num_tensors(); ++t)
      codecs_.push_back(options_.compression.codec_for(t, tensors_.tensor(t).size()));
    const auto& mine = plan_.part(me_);
    if (!mine.chunks.empty()) {
      std::vector<float> weights;
      std::vector<bool> expected;
      for (const auto& m : group_.members) {
        weights.push_back(m.weight);
        expected.push_back(!m.auxiliary);
      }
      reducer_.emplace(mine, std::move(weights), std::move(expected));
      results_.resize(mine.chunks.size());
      senders_.resize(group_.members.size());
    }
  }

  const GroupInfo& group() const noexcept { return group_; }
  const PartitionPlan& plan() const noexcept { return plan_; }
  std::size_t me() const noexcept { return me_; }
  bool accepting() const noexcept { return reducer_.has_value() && !expired_ && !done_; }

  asio::awaitable<AllReduceResult> run() {
    auto self = shared_from_this();
    asio::co_spawn(executor_, watch_deadline(self), asio::detached);
    TaskGroup tasks(executor_);
    if (reducer_) {
      if (!is_auxiliary()) add_local_contribution();
      tasks.spawn(watch_connections(self));
    }
    if (!is_auxiliary()) {
      for (std::size_t r = 0; r < group_.members.size(); ++r) {
        if (r != me_ && !plan_.part(r).chunks.empty()) tasks.spawn(send_part(self, r));
      }
    }
    co_await tasks.wait();
    while (reducer_ && !(reducer_->finished() && jobs_ == 0 && handlers_ == 0))
      co_await changed_.wait_until(Deadline::max());
    done_ = true;
    changed_.notify_all();
    result_.group_size = group_.members.size();
    result_.failed_peers.assign(failed_.begin(), failed_.end());
    co_return result_;
  }

  // Reducer side: serves one sender's stream (header already read and checked).
  asio::awaitable<void> serve_sender(std::shared_ptr<Round> self, std::size_t sender, float weight,
                                     rpc::StreamPtr stream) {
    if (senders_[sender].connected)
      throw Error(Errc::invalid_argument, "sender is already connected");
    if (!reducer_->is_active(sender))
      throw Error(Errc::failed_precondition, "sender was excluded from this round");
    senders_[sender].connected = true;
    senders_[sender].stream = stream;
    reducer_->set_weight(sender, weight);
    changed_.notify_all();
    // The RPC layer cancels this handler when the connection drops, at any
    // co_await. The reader and the writer therefore run as tasks of the round
    // (counted in handlers_ until they end), and this handler only waits.
    TaskGroup tasks(executor_);
    tasks.spawn(read_chunks(self, sender, stream));
    tasks.spawn(write_results(self, sender, stream));
    try {
      co_await tasks.wait();
    } catch (...) {
      exclude_sender(sender, "its connection dropped");
    }
  }

 private:
  static std::size_t total_of(const TensorSet& tensors) {
    std::size_t total = 0;
    for (std::size_t n : tensors.sizes()) total += n;
    return total;
  }
  bool is_auxiliary() const { return group_.members[me_].auxiliary; }

  // Where to encode, reduce or decode a chunk of `elements`: small chunks take
  // less time than handing them to the pool and back (two thread hops, each a
  // wait for a CPU on a busy machine), so they stay on the network thread.
  const std::optional<asio::any_io_executor>& compute_for(std::size_t elements) const {
    static const std::optional<asio::any_io_executor> here;
    return elements * sizeof(float) >= kPoolChunkBytes ? options_.compute : here;
  }
  const PeerId& peer_of(std::size_t index) const { return group_.members[index].address.peer; }

  void add_local_contribution() {
    const auto& part = plan_.part(me_);
    for (std::size_t c = 0; c < part.chunks.size(); ++c) {
      const std::span<const float> values = tensors_.view(part.chunks[c]);
      Contribution local;
      local.codec = Codec::none;
      local.local =
          ByteSpan(reinterpret_cast<const std::uint8_t*>(values.data()), values.size_bytes());
      on_completed(reducer_->add(me_, c, std::move(local)));
    }
  }

  void exclude_sender(std::size_t sender, const std::string& why) {
    if (!reducer_ || done_ || !reducer_->is_active(sender)) return;
    log::debug("all-reduce: excluding sender {}: {}", peer_of(sender).to_string(), why);
    if (!expired_) failed_.insert(peer_of(sender));
    on_completed(reducer_->exclude(sender));
    if (senders_[sender].stream) senders_[sender].stream->cancel();
    changed_.notify_all();
  }

  void on_completed(const std::vector<std::size_t>& chunks) {
    for (std::size_t c : chunks) {
      ChunkInputs inputs = reducer_->take(c);
      if (expired_) {  // too late to deliver: everyone keeps local values
        results_[c].state = ResultSlot::empty;
        if (!is_auxiliary()) ++result_.chunks_local;
        continue;
      }
      ++jobs_;
      asio::co_spawn(executor_, reduce_chunk(shared_from_this(), c, std::move(inputs)),
                     asio::detached);
    }
    if (!chunks.empty()) changed_.notify_all();
  }

  asio::awaitable<void> reduce_chunk([[maybe_unused]] std::shared_ptr<Round> self, std::size_t c,
                                     ChunkInputs inputs) {
    const ChunkRange range = plan_.part(me_).chunks[c];
    const Codec codec = codecs_[range.tensor];
    auto message = std::make_shared<Bytes>();
    bool averaged = false;
    auto work = [&] {
      // Uninitialised: average_chunk writes every element before reading any.
      auto storage = std::make_unique_for_overwrite<float[]>(range.count);
      const std::span<float> average(storage.get(), range.count);
      if (!average_chunk(inputs, average)) return;
      *message =
          chunk_header(static_cast<std::uint32_t>(c), codec, encoded_size(codec, range.count));
      encode_append(codec, average, *message);
      // Keep exactly what the others will decode, so all copies are identical.
      if (!is_auxiliary())
        decode(codec, ByteSpan(*message).subspan(kPayloadOffset), tensors_.view(range));
      averaged = true;
    };
    try {
      co_await run_compute(compute_for(range.count), work);
    } catch (const std::exception& e) {
      log::warn("all-reduce: reducing chunk {} failed: {}", c, e.what());
      averaged = false;
    }
    results_[c].state = averaged ? ResultSlot::ready : ResultSlot::empty;
    if (averaged) results_[c].message = std::move(message);
    if (!is_auxiliary()) ++(averaged ? result_.chunks_averaged : result_.chunks_local);
    --jobs_;
    changed_.notify_all();
  }

  // Reducer side: sends averaged chunks to one sender in chunk order.
  // Counts a reducer-side task in handlers_ for as long as it lives.
  struct HandlerGuard {
    Round& round;
    explicit HandlerGuard(Round& r) : round(r) { ++round.handlers_; }
    ~HandlerGuard() {
      --round.handlers_;
      round.changed_.notify_all();
    }
  };

  // Reducer side: reads one sender's chunks into the reducer.
  asio::awaitable<void> read_chunks(std::shared_ptr<Round> self, std::size_t sender,
                                    rpc::StreamPtr stream) {
    HandlerGuard guard(*self);
    try {
      while (reducer_->is_active(sender) && !expired_) {
        auto message = co_await stream->read_message(time_left(deadline_, options_.sender_timeout));
        if (!message) {
          if (reducer_->delivered(sender) < reducer_->num_chunks())
            exclude_sender(sender, "closed its stream before sending every chunk");
          break;
        }
        result_.bytes_received += message->size();
        const ChunkHeader header = parse_chunk_header(message->view());
        if (header.index >= plan_.part(me_).chunks.size())
          throw Error(Errc::bad_message, "chunk index out of range");
        validate_payload(header.codec, message->view().subspan(kChunkHeaderBytes),
                         plan_.part(me_).chunks[header.index].count);
        Contribution contribution;
        contribution.codec = header.codec;
        contribution.payload_offset = message->offset + kChunkHeaderBytes;
        contribution.owned = std::move(message->storage);
        on_completed(reducer_->add(sender, header.index, std::move(contribution)));
      }
    } catch (const std::exception& e) {
      exclude_sender(sender, e.what());
    }
  }

  // Reducer side: accepts the stream, then sends averaged chunks in chunk order.
  asio::awaitable<void> write_results(std::shared_ptr<Round> self, std::size_t sender,
                                      rpc::StreamPtr stream) {
    HandlerGuard guard(*self);
    try {
      Bytes accepted(1, kStreamAccepted);
      co_await stream->write(std::move(accepted));
      result_.bytes_sent += 1;
      std::size_t next = 0;
      while (next < results_.size()) {
        if (!reducer_->is_active(sender) || expired_) co_return;
        ResultSlot& slot = results_[next];
        if (slot.state == ResultSlot::pending) {
          co_await changed_.wait_until(deadline_);
          continue;
        }
        if (slot.state == ResultSlot::ready) {
          // Each stream encrypts its frame in place, so each needs its own copy.
          Bytes copy(*slot.message);
          result_.bytes_sent += copy.size() - rpc::kStreamHeadroom;
          co_await stream->write_framed(std::move(copy));
        }
        ++next;
      }
      co_await stream->close_write();
    } catch (const std::exception& e) {
      exclude_sender(sender, std::string("writing results failed: ") + e.what());
    }
  }

  // Reducer side: senders that never connect are excluded after sender_timeout.
  asio::awaitable<void> watch_connections([[maybe_unused]] std::shared_ptr<Round> self) {
    const auto give_up = std::min(started_ + options_.sender_timeout, deadline_);
    while (!done_ && !expired_) {
      bool waiting = false;
      for (std::size_t s = 0; s < senders_.size(); ++s)
        waiting = waiting || (s != me_ && reducer_->is_active(s) && !senders_[s].connected);
      if (!waiting) co_return;
      if (SteadyClock::now() >= give_up) {
        for (std::size_t s = 0; s < senders_.size(); ++s)
          if (s != me_ && !senders_[s].connected) exclude_sender(s, "did not connect in time");
        co_return;
      }
      co_await changed_.wait_until(give_up);
    }
  }

  asio::awaitable<void> watch_deadline([[maybe_unused]] std::shared_ptr<Round> self) {
    while (!done_ && SteadyClock::now() < deadline_) co_await changed_.wait_until(deadline_);
    if (done_) co_return;
    expired_ = true;
    result_.deadline_hit = true;
    if (reducer_) {
      for (std::size_t s = 0; s < senders_.size(); ++s)
        if (reducer_->is_active(s)) on_completed(reducer_->exclude(s));
      for (auto& sender : senders_)
        if (sender.stream) sender.stream->cancel();
    }
    for (auto& stream : outgoing_)
      if (stream) stream->cancel();
    changed_.notify_all();
  }

  // Sender side: streams part r to its reducer and reads back the averages.
  asio::awaitable<void> send_part(std::shared_ptr<Round> self, std::size_t r) {
    const auto& part = plan_.part(r);
    std::size_t received = 0;
    try {
      rpc::CallOptions open_options;
      open_options.timeout = time_left(deadline_, options_.connect_timeout);
      auto stream =
          co_await node_.open_stream(group_.members[r].address, kAllReduceMethod, open_options);
      if (expired_) {
        stream->cancel();
        throw Error(Errc::deadline_exceeded, "round deadline");
      }
      outgoing_[r] = stream;
      StreamHeader header{
          group_.group_id,    static_cast<std::uint32_t>(me_), static_cast<std::uint32_t>(r),
          group_.schema_hash, plan_.total_elements(),          group_.members[me_].weight};
      Bytes header_message = encode_stream_header(header);
      result_.bytes_sent += header_message.size();
      co_await stream->write(std::move(header_message));

      auto progress = std::make_shared<SendProgress>();
      TaskGroup writer(executor_);
      writer.spawn(write_part(self, r, stream, progress));
      std::vector<bool> got(part.chunks.size(), false);
      std::exception_ptr read_error;
      try {
        // The reducer confirms it runs this round (or the stream fails) in time.
        auto accepted = co_await stream->read(time_left(deadline_, options_.connect_timeout));
        if (!accepted || accepted->size() != 1 || (*accepted)[0] != kStreamAccepted)
          throw Error(Errc::bad_message, "reducer did not accept the stream");
        result_.bytes_received += 1;
        while (received < part.chunks.size()) {
          auto message = co_await stream->read_message(time_left(deadline_, kNoCap));
          if (!message) break;
          result_.bytes_received += message->size();
          const ChunkHeader h = parse_chunk_header(message->view());
          // A result may only follow our own contribution to that chunk.
          if (h.index >= part.chunks.size() || got[h.index] || h.index >= progress->sent)
            throw Error(Errc::bad_message, "unexpected result chunk");
          const ChunkRange range = part.chunks[h.index];
          const ByteSpan payload = message->view().subspan(kChunkHeaderBytes);
          validate_payload(h.codec, payload, range.count);
          auto work = [&] { decode(h.codec, payload, tensors_.view(range)); };
          co_await run_compute(compute_for(range.count), work);
          got[h.index] = true;
          ++received;
        }
      } catch (...) {
        read_error = std::current_exception();
        stream->cancel();
      }
      co_await writer.wait();
      if (read_error) std::rethrow_exception(read_error);
      if (progress->failed && received < part.chunks.size())
        throw Error(Errc::unavailable, "sending the part failed");
    } catch (const std::exception& e) {
      if (SteadyClock::now() >= deadline_) result_.deadline_hit = true;
      if (!expired_) {
        log::debug("all-reduce: reducer {} failed: {}", peer_of(r).to_string(), e.what());
        failed_.insert(peer_of(r));
      }
    }
    result_.chunks_averaged += received;
    result_.chunks_local += part.chunks.size() - received;
  }

  struct SendProgress {
    std::size_t sent = 0;  // chunks handed to the stream
    bool failed = false;
  };

  asio::awaitable<void> write_part([[maybe_unused]] std::shared_ptr<Round> self, std::size_t r,
                                   rpc::StreamPtr stream, std::shared_ptr<SendProgress> progress) {
    const auto& part = plan_.part(r);
    try {
      for (std::size_t c = 0; c < part.chunks.size(); ++c) {
        const ChunkRange range = part.chunks[c];
        const Codec codec = codecs_[range.tensor];
        Bytes message =
            chunk_header(static_cast<std::uint32_t>(c), codec, encoded_size(codec, range.count));
        auto work = [&] {
          if (options_.compression.error_feedback && residuals_) {
            encode_with_feedback(codec, tensors_.view(range), residuals_->view(range), message);
          } else {
            encode_append(codec, tensors_.view(range), message);
          }
        };
        co_await run_compute(compute_for(range.count), work);
        result_.bytes_sent += message.size() - rpc::kStreamHeadroom;
        // Count the chunk as sent before the write completes: the reducer may
        // answer as soon as the bytes leave, and the values were read already.
        ++progress->sent;
        co_await stream->write_framed(std::move(message));
      }
      co_await stream->close_write();
    } catch (const std::exception& e) {
      log::debug("all-reduce: sending part {} failed: {}", r, e.what());
      progress->failed = true;
      stream->cancel();
    }
  }

  struct ResultSlot {
    enum State { pending, ready, empty } state = pending;
    std::shared_ptr<const Bytes> message;
  };
  struct SenderSlot {
    bool connected = false;
    rpc::StreamPtr stream;
  };

  asio::any_io_executor executor_;
  rpc::RpcNode& node_;
  GroupInfo group_;
  std::size_t me_;
  TensorSet tensors_;
  std::optional<TensorSet> residuals_;
  AllReduceOptions options_;
  Deadline deadline_;
  Deadline started_;
  PartitionPlan plan_;
  std::vector<Codec> codecs_;
  Signal changed_;

  std::optional<PartReducer> reducer_;
  std::vector<ResultSlot> results_;
  std::vector<SenderSlot> senders_;
  std::vector<rpc::StreamPtr> outgoing_;
  std::size_t jobs_ = 0;
  std::size_t handlers_ = 0;
  bool expired_ = false;
  bool done_ = false;
  std::set<PeerId> failed_;
  AllReduceResult result_;
};

// ---------------------------------------------------------------------------

struct AllReduceService::State {
  explicit State(const asio::any_io_executor& executor) : rounds_changed(executor) {}
  std::map<std::string, std::weak_ptr<Round>> rounds;
  Signal rounds_changed;
  std::chrono::milliseconds accept_wait{5000};  // how long a stream may wait for its round
};

namespace {

asio::awaitable<void> handle_stream(std::shared_ptr<AllReduceService::State> state,
                                    rpc::RequestContext context, rpc::StreamPtr stream);

}  // namespace

AllReduceService::AllReduceService(rpc::RpcNode& node)
    : node_(node), state_(std::make_shared<State>(node.get_executor())) {
  node_.add_stream_method(std::string(kAllReduceMethod),
                          [state = state_](const rpc::RequestContext& context,
                                           rpc::StreamPtr stream) -> asio::awaitable<void> {
                            return handle_stream(state, context, std::move(stream));
                          });
}

AllReduceService::~AllReduceService() = default;

namespace {

asio::awaitable<void> handle_stream(std::shared_ptr<AllReduceService::State> state,
                                    rpc::RequestContext context, rpc::StreamPtr stream) {
  const PeerId caller = context.peer;
  auto first = co_await stream->read(state->accept_wait);
  if (!first) throw Error(Errc::bad_message, "all-reduce stream without a header");
  const StreamHeader header = decode_stream_header(*first);
  const std::string key = key_of(header.group_id);
  // The sender may be a little ahead of us: wait briefly for our round to start.
  const auto give_up = SteadyClock::now() + state->accept_wait;
  std::shared_ptr<Round> round;
  while (!(round = state->rounds.count(key) ? state->rounds[key].lock() : nullptr)) {
    if (SteadyClock::now() >= give_up) throw Error(Errc::not_found, "no such all-reduce round");
    co_await state->rounds_changed.wait_until(give_up);
  }
  const auto& members = round->group().members;
  if (header.sender >= members.size() || members[header.sender].address.peer != caller)
    throw Error(Errc::permission_denied, "sender index does not match the caller");
  if (members[header.sender].auxiliary || header.sender == round->me())
    throw Error(Errc::invalid_argument, "this member sends no tensors");
  if (header.reducer != round->me()) throw Error(Errc::invalid_argument, "wrong reducer index");
  if (header.schema_hash != round->group().schema_hash ||
      header.total_elements != round->plan().total_elements())
    throw Error(Errc::invalid_argument, "tensor schema does not match");
  if (!round->accepting()) throw Error(Errc::failed_precondition, "round is not accepting");
  co_await round->serve_sender(round, header.sender, header.weight, std::move(stream));
}

}  // namespace

asio::awaitable<AllReduceResult> AllReduceService::run(GroupInfo group, TensorSet tensors,
                                                       std::optional<TensorSet> residuals,
                                                       AllReduceOptions options,
                                                       Deadline deadline) {
  if (group.group_id.empty() || group.group_id.size() > kMaxGroupIdBytes)
    throw Error(Errc::invalid_argument, "group id must be 1..64 bytes");
  std::size_t me = group.members.size();
  for (std::size_t i = 0; i < group.members.size(); ++i)
    if (group.members[i].address.peer == node_.peer_id()) me = i;
  if (me == group.members.size())
    throw Error(Errc::invalid_argument, "this peer is not a member of the group");
  for (const auto& m : group.members)
    if (!std::isfinite(m.weight) || m.weight < 0)
      throw Error(Errc::invalid_argument, "member weights must be finite and >= 0");
  if (residuals && residuals->sizes() != tensors.sizes())
    throw Error(Errc::invalid_argument, "residuals must have the tensors' shapes");
  const std::string key = key_of(group.group_id);
  if (state_->rounds.count(key) && !state_->rounds[key].expired())
    throw Error(Errc::invalid_argument, "a round with this group id is already running");

  auto round = std::make_shared<Round>(node_.get_executor(), node_, group, me, std::move(tensors),
                                       std::move(residuals), std::move(options), deadline);
  state_->rounds[key] = round;
  state_->rounds_changed.notify_all();
  struct Unregister {
    std::shared_ptr<State> state;
    std::string key;
    ~Unregister() { state->rounds.erase(key); }
  } unregister{state_, key};
  co_return co_await round->run();
}

}  // namespace apiary::averaging
