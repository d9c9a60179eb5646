#pragma once
// The run's model, built from its ModelConfig, behind the one interface the
// trainer uses:
//  - "mlp": nn::Mlp;
//  - "moe-mlp": experts::MoeMlp — dense layers, then a mixture-of-experts layer
//    whose experts are FFNs on `apiary expert-server` processes, found by beam
//    search through the DHT and called over the DHT node's RPC endpoint.
// parameters() holds what this peer trains and the CollaborativeOptimizer
// averages (dense layers, gate, head); remote experts step on their servers.
//
// Threading: one user thread (the training loop), never a network thread.
// Errors: build_model throws apiary::Error{invalid_argument} for a moe-mlp
// model without a DHT to find its experts in.
#include "nn/dataset.hpp"
#include "nn/parameters.hpp"
#include "nn/solo_training.hpp"
#include "optimizer/run_config.hpp"

#include "net/address.hpp"

#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace apiary::dht {
class DhtRunner;
}

namespace apiary::optimizer {

class RunModel {
 public:
  virtual ~RunModel() = default;
  // Zeroes the gradients, then forward, loss and backward on one host batch.
  // std::nullopt when the batch could not be computed (remote experts did not
  // answer): its gradients are incomplete, skip it without stepping.
  virtual std::optional<float> forward_backward(const nn::Tensor& images,
                                                const nn::Tensor& labels) = 0;
  // Loss and accuracy over `data` (batches experts could not compute are left out).
  virtual nn::Evaluation evaluate(const nn::Dataset& data) = 0;
  virtual nn::ParameterRegistry& parameters() = 0;
  // One line for logs, e.g. "mlp 784-256-128-10" or "moe-mlp 784-128-[moe ffn 4x4, k=2]-10".
  virtual std::string describe() const = 0;
};

// True when the model calls remote experts (it then needs a DHT).
bool needs_expert_dht(const ModelConfig& config);

// A client-mode DHT node (on its own thread) bootstrapped from `peers`, for
// finding a run's experts where no swarm provides a DHT (e.g. a solo run of a
// moe-mlp configuration). Throws apiary::Error when bootstrap fails.
std::unique_ptr<dht::DhtRunner> connect_expert_dht(std::vector<PeerAddress> peers);

// `expert_dht`: the DHT where the experts are declared (moe-mlp; the runner
// must outlive the model).
std::unique_ptr<RunModel> build_model(const ModelConfig& config, std::size_t inputs,
                                      std::size_t classes, dht::DhtRunner* expert_dht = nullptr);

}  // namespace apiary::optimizer
