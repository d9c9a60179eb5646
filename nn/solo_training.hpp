#pragma once
// Single-process training of the MLP on Fashion-MNIST: the baseline the
// collaborative runs are compared against, used by `apiary train --solo` and
// examples/train_solo. Errors: as nn/ (DatasetError when the data is missing).
#include "nn/fashion_mnist.hpp"
#include "nn/local_optimizer.hpp"
#include "nn/mlp.hpp"

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace apiary::nn {

struct SoloTrainConfig {
  std::size_t epochs = 3;
  std::size_t batch_size = 128;
  float learning_rate = 1e-3f;
  OptimizerKind optimizer = OptimizerKind::adam;
  std::uint64_t seed = 0;
  std::vector<std::size_t> hidden = {256, 128};
  Activation activation = Activation::relu;
  Device device = Device::cpu;
  std::string data_dir = kFashionMnistDir;
  std::size_t max_steps_per_epoch = 0;  // 0: the whole epoch (tests use fewer)
  // Cosine decay of the learning rate from learning_rate to 0 over all steps.
  bool cosine_schedule = true;
};

struct EpochReport {
  std::size_t epoch = 0;  // 1-based
  std::size_t steps = 0;
  double train_loss = 0.0;  // mean over the epoch's steps
  double test_loss = 0.0;
  double test_accuracy = 0.0;  // fraction in [0, 1]
  double train_seconds = 0.0;
  double samples_per_second = 0.0;
};

struct Evaluation {
  double loss = 0.0;
  double accuracy = 0.0;
};

// Evaluates `model` on all of `data` in batches.
Evaluation evaluate(Mlp& model, const Dataset& data, std::size_t batch_size = 1000);

// Trains and reports each epoch through `on_epoch` (may be empty); returns all reports.
std::vector<EpochReport> train_solo(const SoloTrainConfig& config,
                                    const std::function<void(const EpochReport&)>& on_epoch = {});

// The same with data already loaded (tests reuse one load).
std::vector<EpochReport> train_solo(const SoloTrainConfig& config, const Dataset& train,
                                    const Dataset& test,
                                    const std::function<void(const EpochReport&)>& on_epoch = {});

}  // namespace apiary::nn
