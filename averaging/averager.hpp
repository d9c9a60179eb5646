#pragma once
// Averager: the user-facing API of averaging/. It owns a set of flat fp32
// buffers (borrowed from the caller), a worker pool for compression and
// reduction, and the all-reduce service on an RpcNode. step() finds a group
// (GroupSource) and averages the buffers in place with it.
//
// Threading: step() blocks and must not be called on the node's network
// thread; step_async() is the coroutine form and must run on the node's
// executor. The caller must not touch the buffers while a step runs.
// Metrics (global registry): apiary_averaging_rounds_total,
// apiary_averaging_rounds_failed_total (no group), apiary_averaging_failed_peers_total,
// apiary_averaging_bytes_sent_total, apiary_averaging_bytes_received_total,
// apiary_averaging_round_seconds.
// Errors: throws apiary::Error{invalid_argument} for misuse (empty tensors,
// negative weight); faults of other peers are reported in StepResult.
#include "averaging/butterfly.hpp"
#include "averaging/group_source.hpp"
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

struct StepResult {
  std::size_t group_size = 1;  // 1: no group formed, buffers untouched
  std::vector<PeerId> failed_peers;
  std::uint64_t bytes_sent = 0;
  std::uint64_t bytes_received = 0;
  std::size_t chunks_averaged = 0;
  std::size_t chunks_local = 0;
  bool deadline_hit = false;
  double seconds = 0;
};

// Hash of the tensor sizes and the compression policy: peers average together
// only when it matches.
std::uint64_t schema_hash(std::span<const std::size_t> tensor_sizes,
                          const CompressionPolicy& policy);

class Averager {
 public:
  Averager(rpc::RpcNode& node, std::vector<std::span<float>> tensors,
           std::unique_ptr<GroupSource> groups, AveragerOptions options = {});
  ~Averager();
  Averager(const Averager&) = delete;
  Averager& operator=(const Averager&) = delete;

  StepResult step(float weight, std::chrono::steady_clock::time_point deadline);
  asio::awaitable<StepResult> step_async(float weight,
                                         std::chrono::steady_clock::time_point deadline);

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
