// The reducer half of a butterfly round: every sender's stream delivers its
// chunks of this peer's part; each chunk is averaged once all live senders
// delivered it (sender order, reducer.hpp) and goes back to every sender on
// the stream it came in on.
#include "averaging/butterfly_round.hpp"

#include "core/error.hpp"
#include "core/log.hpp"

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>

#include <exception>

namespace apiary::averaging::detail {
namespace {

std::vector<float> weights_of(const GroupInfo& group) {
  std::vector<float> weights;
  for (const auto& m : group.members) weights.push_back(m.weight);
  return weights;
}

std::vector<bool> contributors_of(const GroupInfo& group) {
  std::vector<bool> expected;
  for (const auto& m : group.members) expected.push_back(!m.auxiliary);
  return expected;
}

}  // namespace

RoundReducer::RoundReducer(std::shared_ptr<RoundShared> round)
    : round_(std::move(round)),
      reducer_(round_->plan.part(round_->me), weights_of(round_->group),
               contributors_of(round_->group)),
      results_(round_->plan.part(round_->me).chunks.size()),
      senders_(round_->group.members.size()) {}

void RoundReducer::start(async::TaskGroup& tasks) {
  if (!round_->is_auxiliary()) add_local_contribution();
  tasks.spawn(watch_connections(shared_from_this()));
}

asio::awaitable<void> RoundReducer::serve_sender(std::size_t sender, float weight,
                                                 rpc::StreamPtr stream) {
  if (senders_[sender].connected)
    throw Error(Errc::invalid_argument, "sender is already connected");
  if (!reducer_.is_active(sender))
    throw Error(Errc::failed_precondition, "sender was excluded from this round");
  senders_[sender].connected = true;
  senders_[sender].stream = stream;
  reducer_.set_weight(sender, weight);
  round_->changed.notify_all();
  // The RPC layer cancels this handler when the connection drops, at any
  // co_await. The reader and the writer therefore run as tasks of the round
  // (counted in handlers_ until they end), and this handler only waits.
  async::TaskGroup tasks(round_->executor);
  tasks.spawn(read_chunks(shared_from_this(), sender, stream));
  tasks.spawn(write_results(shared_from_this(), sender, stream));
  try {
    co_await tasks.wait();
  } catch (...) {
    exclude_sender(sender, "its connection dropped");
  }
}

void RoundReducer::expire() {
  for (std::size_t s = 0; s < senders_.size(); ++s)
    if (reducer_.is_active(s)) on_completed(reducer_.exclude(s));
  for (auto& sender : senders_)
    if (sender.stream) sender.stream->cancel();
}

void RoundReducer::add_local_contribution() {
  const auto& part = round_->plan.part(round_->me);
  for (std::size_t c = 0; c < part.chunks.size(); ++c) {
    const std::span<const float> values = round_->tensors.view(part.chunks[c]);
    Contribution local;
    local.codec = Codec::none;
    local.local =
        ByteSpan(reinterpret_cast<const std::uint8_t*>(values.data()), values.size_bytes());
    on_completed(reducer_.add(round_->me, c, std::move(local)));
  }
}

void RoundReducer::exclude_sender(std::size_t sender, const std::string& why) {
  if (round_->done || !reducer_.is_active(sender)) return;
  log::debug("all-reduce: excluding sender {}: {}", round_->peer_of(sender).to_string(), why);
  if (!round_->expired) round_->failed.insert(round_->peer_of(sender));
  on_completed(reducer_.exclude(sender));
  if (senders_[sender].stream) senders_[sender].stream->cancel();
  round_->changed.notify_all();
}

void RoundReducer::on_completed(const std::vector<std::size_t>& chunks) {
  for (std::size_t c : chunks) {
    ChunkInputs inputs = reducer_.take(c);
    if (round_->expired) {  // too late to deliver: everyone keeps local values
      results_[c].state = ResultSlot::empty;
      if (!round_->is_auxiliary()) ++round_->result.chunks_local;
      continue;
    }
    ++jobs_;
    asio::co_spawn(round_->executor, reduce_chunk(shared_from_this(), c, std::move(inputs)),
                   asio::detached);
  }
  if (!chunks.empty()) round_->changed.notify_all();
}

asio::awaitable<void> RoundReducer::reduce_chunk(
    [[maybe_unused]] std::shared_ptr<RoundReducer> self, std::size_t c, ChunkInputs inputs) {
  RoundShared& round = *round_;
  const ChunkRange range = round.plan.part(round.me).chunks[c];
  const Codec codec = round.codecs[range.tensor];
  auto message = std::make_shared<Bytes>();
  bool averaged = false;
  auto work = [&] {
    // Uninitialised: average_chunk writes every element before reading any.
    auto storage = std::make_unique_for_overwrite<float[]>(range.count);
    const std::span<float> average(storage.get(), range.count);
    if (!average_chunk(inputs, average)) return;
    *message =
        chunk_message(static_cast<std::uint32_t>(c), codec, encoded_size(codec, range.count));
    encode_append(codec, average, *message);
    // Keep exactly what the others will decode, so all copies are identical.
    if (!round.is_auxiliary())
      decode(codec, ByteSpan(*message).subspan(chunk_payload_offset()), round.tensors.view(range));
    averaged = true;
  };
  try {
    co_await async::run_compute(round.compute_for(range.count), work);
  } catch (const std::exception& e) {
    log::warn("all-reduce: reducing chunk {} failed: {}", c, e.what());
    averaged = false;
  }
  results_[c].state = averaged ? ResultSlot::ready : ResultSlot::empty;
  if (averaged) results_[c].message = std::move(message);
  if (!round.is_auxiliary())
    ++(averaged ? round.result.chunks_averaged : round.result.chunks_local);
  --jobs_;
  round.changed.notify_all();
}

// Reads one sender's chunks into the reducer.
asio::awaitable<void> RoundReducer::read_chunks(std::shared_ptr<RoundReducer> self,
                                                std::size_t sender, rpc::StreamPtr stream) {
  HandlerGuard guard(*self);
  RoundShared& round = *round_;
  const auto& part = round.plan.part(round.me);
  try {
    while (reducer_.is_active(sender) && !round.expired) {
      auto message =
          co_await stream->read_message(time_left(round.deadline, round.options.sender_timeout));
      if (!message) {
        if (reducer_.delivered(sender) < reducer_.num_chunks())
          exclude_sender(sender, "closed its stream before sending every chunk");
        break;
      }
      round.result.bytes_received += message->size();
      const ChunkHeader header = parse_chunk_header(message->view());
      if (header.index >= part.chunks.size())
        throw Error(Errc::bad_message, "chunk index out of range");
      validate_payload(header.codec, message->view().subspan(kChunkHeaderBytes),
                       part.chunks[header.index].count);
      Contribution contribution;
      contribution.codec = header.codec;
      contribution.payload_offset = message->offset + kChunkHeaderBytes;
      contribution.owned = std::move(message->storage);
      on_completed(reducer_.add(sender, header.index, std::move(contribution)));
    }
  } catch (const std::exception& e) {
    exclude_sender(sender, e.what());
  }
}

// Accepts the stream, then sends averaged chunks to one sender in chunk order.
asio::awaitable<void> RoundReducer::write_results(std::shared_ptr<RoundReducer> self,
                                                  std::size_t sender, rpc::StreamPtr stream) {
  HandlerGuard guard(*self);
  RoundShared& round = *round_;
  try {
    Bytes accepted(1, kStreamAccepted);
    co_await stream->write(std::move(accepted));
    round.result.bytes_sent += 1;
    std::size_t next = 0;
    while (next < results_.size()) {
      if (!reducer_.is_active(sender) || round.expired) co_return;
      ResultSlot& slot = results_[next];
      if (slot.state == ResultSlot::pending) {
        co_await round.changed.wait_until(round.deadline);
        continue;
      }
      if (slot.state == ResultSlot::ready) {
        // Each stream encrypts its frame in place, so each needs its own copy.
        Bytes copy(*slot.message);
        round.result.bytes_sent += copy.size() - rpc::kStreamHeadroom;
        co_await stream->write_framed(std::move(copy));
      }
      ++next;
    }
    co_await stream->close_write();
  } catch (const std::exception& e) {
    exclude_sender(sender, std::string("writing results failed: ") + e.what());
  }
}

// Senders that never connect are excluded after sender_timeout.
asio::awaitable<void> RoundReducer::watch_connections(
    [[maybe_unused]] std::shared_ptr<RoundReducer> self) {
  RoundShared& round = *round_;
  const auto give_up = std::min(round.started + round.options.sender_timeout, round.deadline);
  while (!round.done && !round.expired) {
    bool waiting = false;
    for (std::size_t s = 0; s < senders_.size(); ++s)
      waiting = waiting || (s != round.me && reducer_.is_active(s) && !senders_[s].connected);
    if (!waiting) co_return;
    if (SteadyClock::now() >= give_up) {
      for (std::size_t s = 0; s < senders_.size(); ++s)
        if (s != round.me && !senders_[s].connected) exclude_sender(s, "did not connect in time");
      co_return;
    }
    co_await round.changed.wait_until(give_up);
  }
}

}  // namespace apiary::averaging::detail
