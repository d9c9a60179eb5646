#pragma once
// Averager: the user-facing API of averaging/. It owns a set of flat fp32
// buffers (borrowed from the caller), a worker pool for compression and
// reduction, and the all-reduce service on an RpcNode. step() runs one round
// (round_runner.hpp: find a group through the GroupSource, average the
// buffers in place with it).
//
// Threading: step() blocks and must not be called on the node's network
// thread; step_async() is the coroutine form and must run on the node's
// executor. The caller must not touch the buffers while a step runs.
// Metrics: those of every round (round_runner.hpp).
// Errors: throws apiary::Error{invalid_argument} for misuse (empty tensors,
// negative weight); faults of other peers are reported in StepResult.
#include "averaging/butterfly.hpp"
#include "averaging/group_source.hpp"
#include "averaging/round_runner.hpp"
#include "net/rpc.hpp"

#include <asio/awaitable.hpp>
#include <asio/thread_pool.hpp>

#include <chrono>
#include <memory>
#include <span>
#include <vector>

namespace apiary::averaging {

struct AveragerOptions {
  AllReduceOptions allreduce;    // `compute` is filled in by the Averager
  unsigned compute_threads = 1;  // worker pool for encode/reduce/decode
};

class Averager {
 public:
  Averager(rpc::RpcNode& node, std::vector<std::span<float>> tensors,
           std::unique_ptr<GroupSource> groups, AveragerOptions options = {});
  ~Averager();
  Averager(const Averager&) = delete;
  Averager& operator=(const Averager&) = delete;

  StepResult step(float weight, Deadline deadline);
  asio::awaitable<StepResult> step_async(float weight, Deadline deadline);

  std::uint64_t schema() const noexcept { return schema_hash_; }
  AllReduceService& service() noexcept { return service_; }

 private:
  rpc::RpcNode& node_;
  std::vector<std::span<float>> tensors_;
  std::vector<std::vector<float>> residuals_;  // error feedback state, when enabled
  std::unique_ptr<GroupSource> groups_;
  AveragerOptions options_;
  asio::thread_pool pool_;
  AllReduceService service_;
  std::uint64_t schema_hash_ = 0;
};

}  // namespace apiary::averaging
