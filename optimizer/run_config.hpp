#pragma once
// The run configuration: everything peers must agree on to train together
// (model, data set, target batch size, optimizer, averaging and compression).
// The coordinator reads it from a JSON file, signs it with the run key and
// publishes it in the DHT; `apiary join` fetches and validates it.
//
// Errors: parse/validate throw apiary::Error{Errc::invalid_argument} whose
// message names the offending field ("config: optimizer.lr must be > 0").
#include <cstdint>
#include <string>
#include <vector>

namespace apiary::optimizer {

struct ModelConfig {
  std::string type = "mlp";  // mlp | moe-mlp
  std::vector<std::uint32_t> hidden = {256, 128};
  std::string activation = "relu";  // relu | gelu
  std::uint64_t seed = 0;           // initialization seed, same on every peer
};

struct DatasetConfig {
  std::string name = "fashion-mnist";
  std::string path = "/usr/share/datasets/fashion-mnist";
};

struct OptimizerConfig {
  std::string name = "adam";  // sgd | adam | adamw | lamb
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
  std::string mode = "target_batch";  // target_batch | local_updates (DiLoCo)
  std::uint32_t average_state_every = 1;
  std::uint32_t target_group_size = 16;
  std::uint32_t min_group_size = 2;
  double matchmaking_time = 2.0;    // initial; adapts to measured rounds
  double averaging_timeout = 30.0;  // initial; adapts to measured rounds
  bool overlap = false;             // apply last epoch's average while the next travels
  std::uint32_t local_steps = 50;   // local_updates: inner steps per round
  double outer_lr = 0.7;            // local_updates: outer Nesterov
  double outer_momentum = 0.9;
};

struct CompressionConfig {
  std::string gradients = "none";  // none | fp16 | bf16 | 8bit
  std::string state = "fp16";
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

  // Strict: unknown fields and wrong types are errors, so a typo is not silently ignored.
  static RunConfig parse_json(const std::string& text);
  static RunConfig load_file(const std::string& path);
  std::string to_json() const;  // canonical (sorted keys), what gets signed
  void validate() const;
};

}  // namespace apiary::optimizer
