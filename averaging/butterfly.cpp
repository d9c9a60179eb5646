#include "averaging/butterfly.hpp"

#include "averaging/butterfly_round.hpp"
#include "averaging/load_balancing.hpp"
#include "core/error.hpp"

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>

#include <algorithm>
#include <cmath>
#include <map>
#include <string>

namespace apiary::averaging {

namespace detail {
namespace {

// Chunks smaller than this are processed on the network thread (compute_for).
constexpr std::size_t kPoolChunkBytes = 64u << 10;

std::size_t total_of(const TensorSet& tensors) {
  std::size_t total = 0;
  for (std::size_t n : tensors.sizes()) total += n;
  return total;
}

}  // namespace

std::chrono::milliseconds time_left(Deadline deadline, std::chrono::milliseconds cap) {
  // Rounded up, so a wait never ends just before the deadline it serves.
  const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - SteadyClock::now());
  return std::clamp(left, std::chrono::milliseconds{1},
                    std::max(cap, std::chrono::milliseconds{1}));
}

Bytes chunk_message(std::uint32_t index, Codec codec, std::size_t payload_bytes) {
  Bytes message(rpc::kStreamHeadroom);
  message.reserve(rpc::kStreamHeadroom + kChunkHeaderBytes + payload_bytes);
  append_chunk_header(message, {index, codec});
  return message;
}

std::size_t chunk_payload_offset() {
  return rpc::kStreamHeadroom + kChunkHeaderBytes;
}

RoundShared::RoundShared(asio::any_io_executor executor_, rpc::RpcNode& node_, GroupInfo group_,
                         std::size_t me_, TensorSet tensors_, std::optional<TensorSet> residuals_,
                         AllReduceOptions options_, Deadline deadline_)
    : executor(executor_),
      node(node_),
      group(std::move(group_)),
      me(me_),
      tensors(std::move(tensors_)),
      residuals(std::move(residuals_)),
      options(std::move(options_)),
      deadline(deadline_),
      started(SteadyClock::now()),
      plan(tensors.sizes(), group_part_sizes(group, total_of(tensors), options.min_part_elements),
           effective_chunk_elements(options, total_of(tensors), group.members.size())),
      changed(executor_) {
  for (std::size_t t = 0; t < tensors.num_tensors(); ++t)
    codecs.push_back(options.compression.codec_for(t, tensors.tensor(t).size()));
}

const std::optional<asio::any_io_executor>& RoundShared::compute_for(std::size_t elements) const {
  static const std::optional<asio::any_io_executor> here;
  return elements * sizeof(float) >= kPoolChunkBytes ? options.compute : here;
}

// One round: its two halves and the deadline that ends both.
class Round : public std::enable_shared_from_this<Round> {
 public:
  explicit Round(std::shared_ptr<RoundShared> shared)
      : shared_(std::move(shared)), sender_(std::make_shared<RoundSender>(shared_)) {
    if (!shared_->plan.part(shared_->me).chunks.empty())
      reducer_ = std::make_shared<RoundReducer>(shared_);
  }

  const RoundShared& shared() const noexcept { return *shared_; }
  // The reducer half, when this peer owns a part and the round still takes senders.
  RoundReducer* accepting_reducer() const noexcept {
    return reducer_ && reducer_->accepting() ? reducer_.get() : nullptr;
  }

  asio::awaitable<AllReduceResult> run() {
    RoundShared& round = *shared_;
    asio::co_spawn(round.executor, watch_deadline(shared_from_this()), asio::detached);
    async::TaskGroup tasks(round.executor);
    if (reducer_) reducer_->start(tasks);
    if (!round.is_auxiliary()) sender_->start(tasks);
    co_await tasks.wait();
    while (reducer_ && !reducer_->settled()) co_await round.changed.wait();
    round.done = true;
    round.changed.notify_all();
    round.result.group_size = round.group.members.size();
    round.result.failed_peers.assign(round.failed.begin(), round.failed.end());
    co_return round.result;
  }

 private:
  asio::awaitable<void> watch_deadline([[maybe_unused]] std::shared_ptr<Round> self) {
    RoundShared& round = *shared_;
    while (!round.done && SteadyClock::now() < round.deadline)
      co_await round.changed.wait_until(round.deadline);
    if (round.done) co_return;
    round.expired = true;
    round.result.deadline_hit = true;
    if (reducer_) reducer_->expire();
    sender_->expire();
    round.changed.notify_all();
  }

  std::shared_ptr<RoundShared> shared_;
  std::shared_ptr<RoundSender> sender_;
  std::shared_ptr<RoundReducer> reducer_;
};

}  // namespace detail

namespace {

std::string key_of(ByteSpan group_id) {
  return std::string(as_string_view(group_id));
}

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

struct AllReduceService::State {
  explicit State(const asio::any_io_executor& executor) : rounds_changed(executor) {}
  std::map<std::string, std::weak_ptr<detail::Round>> rounds;
  async::Signal rounds_changed;
  std::chrono::milliseconds accept_wait{5000};  // how long a stream may wait for its round
};

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
  std::shared_ptr<detail::Round> round;
  while (!(round = state->rounds.count(key) ? state->rounds[key].lock() : nullptr)) {
    if (SteadyClock::now() >= give_up) throw Error(Errc::not_found, "no such all-reduce round");
    co_await state->rounds_changed.wait_until(give_up);
  }
  const detail::RoundShared& shared = round->shared();
  const auto& members = shared.group.members;
  if (header.sender >= members.size() || members[header.sender].address.peer != caller)
    throw Error(Errc::permission_denied, "sender index does not match the caller");
  if (members[header.sender].auxiliary || header.sender == shared.me)
    throw Error(Errc::invalid_argument, "this member sends no tensors");
  if (header.reducer != shared.me) throw Error(Errc::invalid_argument, "wrong reducer index");
  if (header.schema_hash != shared.group.schema_hash ||
      header.total_elements != shared.plan.total_elements())
    throw Error(Errc::invalid_argument, "tensor schema does not match");
  auto* reducer = round->accepting_reducer();
  if (!reducer) throw Error(Errc::failed_precondition, "round is not accepting");
  co_await reducer->serve_sender(header.sender, header.weight, std::move(stream));
}

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

const PeerId& AllReduceService::peer_id() const {
  return node_.peer_id();
}

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

  auto shared = std::make_shared<detail::RoundShared>(node_.get_executor(), node_, std::move(group),
                                                      me, std::move(tensors), std::move(residuals),
                                                      std::move(options), deadline);
  auto round = std::make_shared<detail::Round>(std::move(shared));
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
