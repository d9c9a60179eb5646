#pragma once
// The run configuration: everything peers must agree on to train together
// (model, data set, target batch size, optimizer, averaging and compression).
// The coordinator reads it from a JSON file, signs it with the run key and
// publishes it in the DHT; `apiary join` fetches and validates it.
//
// Named choices (averaging mode, optimizer, codecs) are enums whose names are
// in optimizer/config_names.hpp. One list of each section's fields drives both
// parse_json and to_json (run_config.cpp).
// Errors: parse/validate throw apiary::Error{Errc::invalid_argument} whose
// message names the offending field ("config: optimizer.lr must be > 0").
#include "optimizer/config_names.hpp"

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

namespace apiary::optimizer {

// The remote mixture-of-experts layer of a "moe-mlp" model: its input and
// output width is the last model.hidden width, and its experts are FFNs hosted
// by `apiary expert-server --experts '<expert_prefix>.[0:g0].[0:g1]…' --hidden
// <last hidden> --inner <expert_inner>` processes, found through the DHT.
struct MoeModelConfig {
  std::string expert_prefix = "ffn";  // the grid's name: uids are <prefix>.<i>.<j>…
  std::vector<std::uint32_t> grid = {4, 4};
  std::uint32_t expert_inner = 0;        // the servers' --inner (0: their default, 4 × width)
  std::string gating = "softmax_top_k";  // softmax_top_k | switch_top1
  std::uint32_t k_best = 2;              // experts per sample
  std::uint32_t k_min = 1;               // answers a sample needs for the forward to succeed
  std::uint32_t backward_k_min = 1;
  double forward_timeout = 10.0;     // seconds
  double timeout_after_k_min = 1.0;  // grace period once every sample has k_min answers
  double backward_timeout = 10.0;
  double balancing_loss_weight = 0.01;  // switch_top1: weight of the load-balancing loss
};

struct ModelConfig {
  // mlp | moe-mlp (dense hidden layers, then the MoE layer, then logits) |
  // external: a model of the training script's own (apiary.torch), which the
  // configuration only names; `options` carries the script's fields.
  std::string type = "mlp";
  std::vector<std::uint32_t> hidden = {256, 128};
  std::string activation = "relu";  // relu | gelu
  std::uint64_t seed = 0;           // initialization seed, same on every peer
  MoeModelConfig moe;               // moe-mlp only ("moe" in JSON)
  // external only: any JSON object, passed through to the script as is
  // (canonical text: sorted keys), e.g. {"layers": 4, "width": 128}.
  std::string options = "{}";
};

struct DatasetConfig {
  std::string name = "fashion-mnist";
  std::string path = "/usr/share/datasets/fashion-mnist";
};

struct OptimizerConfig {
  OptimizerName name = OptimizerName::adam;
  double lr = 1e-3;
  double momentum = 0.9;  // sgd
  bool nesterov = false;  // sgd
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
  double weight_decay = 0.0;
  double clip_grad_norm = 0.0;  // 0 = off
  std::uint32_t warmup_epochs = 0;
  double lr_decay_per_epoch = 1.0;  // multiplicative, after warmup
};

struct AveragingConfig {
  AveragingMode mode = AveragingMode::target_batch;
  std::uint32_t average_state_every = 1;
  std::uint32_t target_group_size = 16;
  std::uint32_t min_group_size = 2;
  // How long a group gathers; rounds are also matched this long before the
  // estimated end of an epoch (ahead of time, while the peers compute).
  double matchmaking_time = 2.0;
  double averaging_timeout = 30.0;  // initial; adapts to measured rounds
  // How long the leader of a round matched ahead of time keeps taking members
  // while it waits for this peer to be ready (seconds; 0: averaging_timeout,
  // the value it had before it was a setting). Printed only when set, so the
  // canonical text (and signature) of configurations without it is unchanged.
  double held_round_window = 0.0;
  bool overlap = false;            // apply last epoch's average while the next travels
  std::uint32_t local_steps = 50;  // local_updates: inner steps per round
  double outer_lr = 0.7;           // local_updates: outer Nesterov
  double outer_momentum = 0.9;

  double held_round_window_seconds() const noexcept {
    return held_round_window > 0 ? held_round_window : averaging_timeout;
  }
};

struct CompressionConfig {
  Codec gradients = Codec::none;
  Codec state = Codec::fp16;
  std::uint64_t min_compress_elements = 4096;  // smaller tensors stay fp32
};

struct RunConfig {
  std::string run;  // run name; DHT keys are prefixed with it
  ModelConfig model;
  DatasetConfig dataset;
  std::uint64_t target_batch_size = 4096;
  std::uint32_t batch_size = 64;  // default per-step batch of a joining peer
  OptimizerConfig optimizer;
  AveragingConfig averaging;
  CompressionConfig compression;
  std::uint32_t max_epochs = 0;  // 0 = until stopped
  double target_accuracy = 0.0;  // stop when reached (0 = off)
  // The most samples/s one peer may claim in its progress reports; claims
  // above it count as it (0: kDefaultMaxPeerSamplesPerSecond, progress_estimate.hpp).
  double max_peer_samples_per_second = 0.0;

  // Strict: unknown fields and wrong types are errors, so a typo is not silently ignored.
  static RunConfig parse_json(const std::string& text);
  static RunConfig load_file(const std::string& path);
  std::string to_json() const;  // canonical (sorted keys), what gets signed
  void validate() const;
  // The most samples one peer honestly holds in an epoch, for the progress
  // estimate (reports above twice this are not believed): the target batch; in
  // local-update mode, where the target plays no part, also a postponed
  // round's two inner phases at the run's batch size.
  std::uint64_t epoch_samples_bound() const noexcept {
    if (averaging.mode != AveragingMode::local_updates) return target_batch_size;
    return std::max<std::uint64_t>(target_batch_size,
                                   std::uint64_t{2} * averaging.local_steps * batch_size);
  }
};

}  // namespace apiary::optimizer
