#include "averaging/round_runner.hpp"

#include "core/codec.hpp"
#include "core/error.hpp"
#include "core/hash.hpp"
#include "core/log.hpp"
#include "core/metrics.hpp"

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>

#include <cmath>
#include <cstring>

namespace apiary::averaging {
namespace {

std::uint64_t schema_of(const RoundRequest& request) {
  return schema_hash(request.tensors.sizes(), request.allreduce.compression);
}

void record(const StepResult& step) {
  auto& registry = metrics::Registry::global();
  if (step.group_size < 2) {
    registry.counter("apiary_averaging_rounds_failed_total", "steps that found no group").inc();
    return;
  }
  registry.counter("apiary_averaging_rounds_total", "all-reduce rounds run").inc();
  registry.counter("apiary_averaging_failed_peers_total", "peers excluded or failed in rounds")
      .inc(step.failed_peers.size());
  registry.counter("apiary_averaging_bytes_sent_total", "all-reduce payload bytes sent")
      .inc(step.bytes_sent);
  registry.counter("apiary_averaging_bytes_received_total", "all-reduce payload bytes received")
      .inc(step.bytes_received);
  registry.histogram("apiary_averaging_round_seconds", "all-reduce round duration")
      .observe(step.seconds);
}

// The all-reduce half of a round, once matchmaking is over.
asio::awaitable<StepResult> average_with(AllReduceService& service, std::optional<GroupInfo> group,
                                         RoundRequest request, Deadline started) {
  StepResult step;
  if (!group || group->members.size() < 2) {
    step.error = "could not find a group";
    step.seconds = seconds_since(started);
    record(step);
    co_return step;
  }
  // The weight travels in this peer's stream headers (matched ahead of time,
  // the group was formed before the weight was known).
  for (auto& m : group->members)
    if (m.address.peer == service.peer_id()) m.weight = request.weight;
  const auto reduce_started = SteadyClock::now();
  const std::size_t members = group->members.size();
  AllReduceResult result = co_await service.run(std::move(*group), std::move(request.tensors),
                                                std::move(request.residuals),
                                                std::move(request.allreduce), request.deadline);
  log::debug("all-reduce in a group of {} took {:.0f} ms", members,
             1000 * seconds_since(reduce_started));
  static_cast<AllReduceResult&>(step) = std::move(result);
  if (!step.ok())
    step.error = step.deadline_hit ? "all-reduce hit its deadline" : "no part was averaged";
  step.seconds = seconds_since(started);
  record(step);
  co_return step;
}

}  // namespace

std::uint64_t schema_hash(std::span<const std::size_t> tensor_sizes,
                          const CompressionPolicy& policy) {
  codec::Writer w;
  w.array(static_cast<std::uint32_t>(tensor_sizes.size()));
  for (std::size_t t = 0; t < tensor_sizes.size(); ++t)
    w.array(2)
        .uint(tensor_sizes[t])
        .uint(static_cast<std::uint8_t>(policy.codec_for(t, tensor_sizes[t])));
  const Hash256 digest = hash256(w.take());
  std::uint64_t value;
  std::memcpy(&value, digest.data(), sizeof(value));
  return value;
}

void PreparedRound::begin(asio::any_io_executor executor, std::unique_ptr<GroupSource> source,
                          Deadline deadline) {
  if (cancelled_ || source_) return;
  done_.emplace(executor);
  source_ = std::move(source);
  asio::co_spawn(executor, match(shared_from_this(), deadline), asio::detached);
}

void PreparedRound::cancel() {
  cancelled_ = true;
  if (source_ && !finished_) source_->abandon();
}

asio::awaitable<void> PreparedRound::match([[maybe_unused]] std::shared_ptr<PreparedRound> self,
                                           Deadline deadline) {
  try {
    group_ = co_await source_->find_group(1.0f, schema_, deadline);
  } catch (const std::exception& e) {
    log::debug("matchmaking ahead for {} failed: {}", key_, e.what());
  }
  finished_ = true;
  started_ = group_.has_value();
  done_->notify_all();
}

asio::awaitable<std::optional<GroupInfo>> PreparedRound::take_group(std::uint64_t schema,
                                                                    Deadline deadline) {
  if (schema != schema_) {
    source_->abandon();  // the tensors changed since it was prepared
    co_return std::nullopt;
  }
  // Start the held group (if this peer leads it) and take it as soon as it is there.
  source_->release();
  while (!finished_ && SteadyClock::now() < deadline) co_await done_->wait_until(deadline);
  co_return group_;
}

asio::awaitable<StepResult> run_round(AllReduceService& service, GroupSource& groups,
                                      RoundRequest request) {
  if (!std::isfinite(request.weight) || request.weight < 0)
    throw Error(Errc::invalid_argument, "averaging round: weight must be finite and >= 0");
  const auto started = SteadyClock::now();
  auto group = co_await groups.find_group(request.weight, schema_of(request), request.deadline);
  co_return co_await average_with(service, std::move(group), std::move(request), started);
}

asio::awaitable<StepResult> run_round(AllReduceService& service, const std::string& key,
                                      std::shared_ptr<PreparedRound> prepared,
                                      const GroupSourceFor& groups, RoundRequest request) {
  if (!std::isfinite(request.weight) || request.weight < 0)
    throw Error(Errc::invalid_argument, "averaging round: weight must be finite and >= 0");
  const auto started = SteadyClock::now();
  const std::uint64_t schema = schema_of(request);
  std::optional<GroupInfo> group;
  if (prepared && !prepared->begun()) {
    prepared->cancel();  // its matchmaking has not begun: it never will
    prepared.reset();
  }
  if (prepared) {
    group = co_await prepared->take_group(schema, request.deadline);
    log::debug("{}: group of {} matched ahead, waited {:.0f} ms for it", key,
               group ? group->members.size() : 0, 1000 * seconds_since(started));
    if (!group) log::debug("{}: no group found ahead of time; matching now", key);
  }
  if (!group) {
    // A round matched ahead that failed (e.g. the group started without
    // this peer) matches again under a second key, with whoever else missed it.
    auto source = groups(prepared ? key + "/retry" : key);
    group = co_await source->find_group(request.weight, schema, request.deadline);
  }
  co_return co_await average_with(service, std::move(group), std::move(request), started);
}

}  // namespace apiary::averaging
