#pragma once
// apiary::Optimizer: collaborative training for an embedder's own loop in one
// object. It joins the run's swarm (a NetworkSwarm, or alone when no peers are
// given) and steps a CollaborativeOptimizer over the caller's flat buffers:
//
//   apiary::OptimizerOptions options;
//   options.peers = "apiary://…";  options.run = "my-run";  options.target_batch_size = 512;
//   apiary::Optimizer optimizer(options, params, grads);
//   for (;;) {
//     compute one mini-batch's gradients into `grads` (overwrite, don't add);
//     if (optimizer.step(batch_size)) { an epoch ended: the swarm stepped together }
//   }
//
// Its API is plain (strings, numbers, spans of floats) so that language
// bindings can wrap it as is; CollaborativeOptimizer has the rest.
// Errors: the constructor throws apiary::Error{invalid_argument} for a bad
// option or configuration (the message names the field) and
// apiary::Error{unavailable} when no peer answers; step() as CollaborativeOptimizer.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>

namespace apiary {

namespace optimizer {
class CollaborativeOptimizer;
class NetworkSwarm;
class StepRule;
}  // namespace optimizer

struct OptimizerOptions {
  // Any peers of the run ("apiary://…" addresses, comma-separated); empty:
  // train alone (a swarm of one, for trying a loop out), or with start_swarm
  // be the first peer of a new swarm that others join through address().
  std::string peers;
  bool start_swarm = false;
  std::string run = "apiary";              // the run's name: peers of one run train together
  std::uint64_t target_batch_size = 4096;  // samples per collaborative step, swarm-wide
  double learning_rate = 1e-3;
  // The rest of the run configuration as its JSON text (optimizer/run_config.hpp),
  // e.g. R"({"averaging": {"matchmaking_time": 1.0}})"; the fields above
  // replace its own. Every peer of the run must use the same. Empty: defaults.
  std::string run_config_json;
  std::string listen_host = "127.0.0.1";  // where to accept peers (not when alone)
  std::uint16_t listen_port = 0;          // 0: any free port
  bool client_mode = false;               // accept no connections (behind a NAT)
};

class Optimizer {
 public:
  // `params` and `grads` are the model's flat buffers (same size); they must
  // outlive the optimizer. All peers must start from the same parameters.
  // `step_rule`: the embedder's own optimizer (optimizer/step_rule.hpp); null:
  // the run configuration's.
  Optimizer(const OptimizerOptions& options, std::span<float> params, std::span<float> grads,
            std::shared_ptr<optimizer::StepRule> step_rule = nullptr);
  ~Optimizer();
  Optimizer(const Optimizer&) = delete;
  Optimizer& operator=(const Optimizer&) = delete;

  // After each backward pass, with the mini-batch size; true when this call
  // ended an epoch (the parameters took the swarm's step).
  bool step(std::size_t batch_size);
  std::uint64_t epoch() const noexcept;
  // Whether the last epoch's gradients were the swarm's average (false: local only).
  bool last_epoch_averaged() const noexcept;
  // This peer's address for others to join through ("" when alone).
  std::string address() const;

  optimizer::CollaborativeOptimizer& collaborative() noexcept { return *optimizer_; }

 private:
  std::shared_ptr<optimizer::NetworkSwarm> network_;  // null when alone
  std::unique_ptr<optimizer::CollaborativeOptimizer> optimizer_;
};

}  // namespace apiary
