#include "averaging/averager.hpp"

#include "core/codec.hpp"
#include "core/error.hpp"
#include "core/hash.hpp"
#include "core/metrics.hpp"

#include <asio/co_spawn.hpp>
#include <asio/use_future.hpp>

#include <cmath>
#include <cstring>

namespace apiary::averaging {

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

Averager::Averager(rpc::RpcNode& node, std::vector<std::span<float>> tensors,
                   std::unique_ptr<GroupSource> groups, AveragerOptions options)
    : node_(node),
      tensors_(std::move(tensors)),
      groups_(std::move(groups)),
      options_(std::move(options)),
      pool_(std::max(1u, options_.compute_threads)),
      service_(node) {
  if (tensors_.empty()) throw Error(Errc::invalid_argument, "Averager needs at least one tensor");
  if (!groups_) throw Error(Errc::invalid_argument, "Averager needs a group source");
  options_.allreduce.compute = pool_.get_executor();
  std::vector<std::size_t> sizes;
  for (const auto& t : tensors_) sizes.push_back(t.size());
  schema_hash_ = schema_hash(sizes, options_.allreduce.compression);
  if (options_.allreduce.compression.error_feedback) {
    for (const auto& t : tensors_) residuals_.emplace_back(t.size(), 0.0f);
  }
}

Averager::~Averager() {
  pool_.join();
}

asio::awaitable<StepResult> Averager::step_async(float weight,
                                                 std::chrono::steady_clock::time_point deadline) {
  if (!std::isfinite(weight) || weight < 0)
    throw Error(Errc::invalid_argument, "Averager::step: weight must be finite and >= 0");
  auto& registry = metrics::Registry::global();
  const auto start = std::chrono::steady_clock::now();
  StepResult step;
  auto group = co_await groups_->find_group(weight, schema_hash_, deadline);
  if (!group || group->members.size() < 2) {
    registry.counter("apiary_averaging_rounds_failed_total", "steps that found no group").inc();
    step.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    co_return step;
  }
  std::optional<TensorSet> residuals;
  if (!residuals_.empty()) {
    std::vector<std::span<float>> spans;
    for (auto& r : residuals_) spans.emplace_back(r);
    residuals.emplace(std::move(spans));
  }
  TensorSet tensors(tensors_);  // named: no temporaries in co_await expressions (GCC 12)
  const AllReduceResult result = co_await service_.run(
      std::move(*group), std::move(tensors), std::move(residuals), options_.allreduce, deadline);
  step.group_size = result.group_size;
  step.failed_peers = result.failed_peers;
  step.bytes_sent = result.bytes_sent;
  step.bytes_received = result.bytes_received;
  step.chunks_averaged = result.chunks_averaged;
  step.chunks_local = result.chunks_local;
  step.deadline_hit = result.deadline_hit;
  step.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  registry.counter("apiary_averaging_rounds_total", "all-reduce rounds run").inc();
  registry.counter("apiary_averaging_failed_peers_total", "peers excluded or failed in rounds")
      .inc(step.failed_peers.size());
  registry.counter("apiary_averaging_bytes_sent_total", "all-reduce payload bytes sent")
      .inc(step.bytes_sent);
  registry.counter("apiary_averaging_bytes_received_total", "all-reduce payload bytes received")
      .inc(step.bytes_received);
  registry.histogram("apiary_averaging_round_seconds", "all-reduce round duration")
      .observe(step.seconds);
  co_return step;
}

StepResult Averager::step(float weight, std::chrono::steady_clock::time_point deadline) {
  auto future =
      asio::co_spawn(node_.get_executor(), step_async(weight, deadline), asio::use_future);
  return future.get();
}

}  // namespace apiary::averaging
