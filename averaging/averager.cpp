#include "averaging/averager.hpp"

#include "core/error.hpp"

#include <asio/co_spawn.hpp>
#include <asio/use_future.hpp>

#include <cmath>

namespace apiary::averaging {

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

asio::awaitable<StepResult> Averager::step_async(float weight, Deadline deadline) {
  if (!std::isfinite(weight) || weight < 0)
    throw Error(Errc::invalid_argument, "Averager::step: weight must be finite and >= 0");
  RoundRequest request;
  request.weight = weight;
  request.tensors = TensorSet(tensors_);
  if (!residuals_.empty()) {
    std::vector<std::span<float>> spans;
    for (auto& r : residuals_) spans.emplace_back(r);
    request.residuals.emplace(std::move(spans));
  }
  request.allreduce = options_.allreduce;
  request.deadline = deadline;
  co_return co_await run_round(service_, *groups_, std::move(request));
}

StepResult Averager::step(float weight, Deadline deadline) {
  auto future =
      asio::co_spawn(node_.get_executor(), step_async(weight, deadline), asio::use_future);
  return future.get();
}

}  // namespace apiary::averaging
