// The sender half of a butterfly round: for every other member that owns a
// non-empty part, one stream carries this peer's chunks of that part out and
// the averaged chunks back.
#include "averaging/butterfly_round.hpp"

#include "core/error.hpp"
#include "core/log.hpp"

#include <exception>

namespace apiary::averaging::detail {

RoundSender::RoundSender(std::shared_ptr<RoundShared> round)
    : round_(std::move(round)), outgoing_(round_->group.members.size()) {}

void RoundSender::start(async::TaskGroup& tasks) {
  for (std::size_t r = 0; r < round_->group.members.size(); ++r) {
    if (r != round_->me && !round_->plan.part(r).chunks.empty())
      tasks.spawn(send_part(shared_from_this(), r));
  }
}

void RoundSender::expire() {
  for (auto& stream : outgoing_)
    if (stream) stream->cancel();
}

// Streams part r to its reducer and reads back the averages.
asio::awaitable<void> RoundSender::send_part(std::shared_ptr<RoundSender> self, std::size_t r) {
  RoundShared& round = *round_;
  const auto& part = round.plan.part(r);
  std::size_t received = 0;
  try {
    rpc::CallOptions open_options;
    open_options.timeout = time_left(round.deadline, round.options.connect_timeout);
    auto stream = co_await round.node.open_stream(round.group.members[r].address, kAllReduceMethod,
                                                  open_options);
    if (round.expired) {
      stream->cancel();
      throw Error(Errc::deadline_exceeded, "round deadline");
    }
    outgoing_[r] = stream;
    StreamHeader header{round.group.group_id,          static_cast<std::uint32_t>(round.me),
                        static_cast<std::uint32_t>(r), round.group.schema_hash,
                        round.plan.total_elements(),   round.group.members[round.me].weight};
    Bytes header_message = encode_stream_header(header);
    round.result.bytes_sent += header_message.size();
    co_await stream->write(std::move(header_message));

    auto progress = std::make_shared<Progress>();
    async::TaskGroup writer(round.executor);
    writer.spawn(write_part(self, r, stream, progress));
    std::exception_ptr read_error;
    try {
      co_await read_results(r, stream, *progress, received);
    } catch (...) {
      read_error = std::current_exception();
      stream->cancel();
    }
    co_await writer.wait();
    if (read_error) std::rethrow_exception(read_error);
    if (progress->failed && received < part.chunks.size())
      throw Error(Errc::unavailable, "sending the part failed");
  } catch (const std::exception& e) {
    if (SteadyClock::now() >= round.deadline) round.result.deadline_hit = true;
    if (!round.expired) {
      log::debug("all-reduce: reducer {} failed: {}", round.peer_of(r).to_string(), e.what());
      round.failed.insert(round.peer_of(r));
    }
  }
  round.result.chunks_averaged += received;
  round.result.chunks_local += part.chunks.size() - received;
}

// Reads the reducer's acceptance, then the averaged chunks into the tensors;
// `received` counts the chunks decoded (also when reading fails part way).
asio::awaitable<void> RoundSender::read_results(std::size_t r, rpc::StreamPtr stream,
                                                const Progress& progress, std::size_t& received) {
  RoundShared& round = *round_;
  const auto& part = round.plan.part(r);
  // The reducer confirms it runs this round (or the stream fails) in time.
  auto accepted = co_await stream->read(time_left(round.deadline, round.options.connect_timeout));
  if (!accepted || accepted->size() != 1 || (*accepted)[0] != kStreamAccepted)
    throw Error(Errc::bad_message, "reducer did not accept the stream");
  round.result.bytes_received += 1;
  std::vector<bool> got(part.chunks.size(), false);
  while (received < part.chunks.size()) {
    auto message = co_await stream->read_message(time_left(round.deadline, kNoCap));
    if (!message) break;
    round.result.bytes_received += message->size();
    const ChunkHeader h = parse_chunk_header(message->view());
    // A result may only follow our own contribution to that chunk.
    if (h.index >= part.chunks.size() || got[h.index] || h.index >= progress.sent)
      throw Error(Errc::bad_message, "unexpected result chunk");
    const ChunkRange range = part.chunks[h.index];
    const ByteSpan payload = message->view().subspan(kChunkHeaderBytes);
    validate_payload(h.codec, payload, range.count);
    auto work = [&] { decode(h.codec, payload, round.tensors.view(range)); };
    co_await async::run_compute(round.compute_for(range.count), work);
    got[h.index] = true;
    ++received;
  }
}

asio::awaitable<void> RoundSender::write_part([[maybe_unused]] std::shared_ptr<RoundSender> self,
                                              std::size_t r, rpc::StreamPtr stream,
                                              std::shared_ptr<Progress> progress) {
  RoundShared& round = *round_;
  const auto& part = round.plan.part(r);
  try {
    for (std::size_t c = 0; c < part.chunks.size(); ++c) {
      const ChunkRange range = part.chunks[c];
      const Codec codec = round.codecs[range.tensor];
      Bytes message =
          chunk_message(static_cast<std::uint32_t>(c), codec, encoded_size(codec, range.count));
      auto work = [&] {
        if (round.options.compression.error_feedback && round.residuals) {
          encode_with_feedback(codec, round.tensors.view(range), round.residuals->view(range),
                               message);
        } else {
          encode_append(codec, round.tensors.view(range), message);
        }
      };
      co_await async::run_compute(round.compute_for(range.count), work);
      round.result.bytes_sent += message.size() - rpc::kStreamHeadroom;
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

}  // namespace apiary::averaging::detail
