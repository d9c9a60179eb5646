// `apiary train --solo`: trains the MLP on Fashion-MNIST in this process and
// prints loss and test accuracy per epoch (the baseline for collaborative runs).
#include "kernels/device.hpp"
#include "nn/solo_training.hpp"
#include "tools/command.hpp"

#include <nlohmann/json.hpp>

#include <cstdio>
#include <memory>

namespace apiary::tools {
namespace {

struct TrainOptions {
  bool solo = false;
  bool json = false;
  std::string optimizer = "adam";
  std::string device = "cpu";
  std::string activation = "relu";
  float learning_rate = 0.0f;  // 0: the optimizer's default (see default_learning_rate)
  nn::SoloTrainConfig config;
};

// Defaults that reach ~87 % test accuracy in 3 epochs (batch 128, cosine decay).
float default_learning_rate(nn::OptimizerKind kind) {
  switch (kind) {
    case nn::OptimizerKind::sgd:
      return 0.05f;  // with momentum 0.9
    case nn::OptimizerKind::lamb:
      return 0.01f;
    case nn::OptimizerKind::adam:
      break;
  }
  return 1e-3f;
}

int run_train(const TrainOptions& options) {
  if (!options.solo) {
    std::fprintf(stderr,
                 "apiary train: only --solo training is available in this build "
                 "(collaborative training takes --config)\n");
    return 2;
  }
  nn::SoloTrainConfig config = options.config;
  config.optimizer = nn::parse_optimizer_kind(options.optimizer);
  config.learning_rate = options.learning_rate > 0.0f ? options.learning_rate
                                                      : default_learning_rate(config.optimizer);
  config.activation = options.activation == "gelu" ? nn::Activation::gelu : nn::Activation::relu;
  if (options.device == "cuda") {
    if (!kernels::cuda_available()) {
      std::fprintf(stderr, "apiary train: --device cuda: %s\n", kernels::cuda_status().c_str());
      return 2;
    }
    config.device = kernels::Device::cuda;
  }
  // Load first, so a missing package is reported before anything else is printed.
  nn::Dataset train = nn::load_fashion_mnist(nn::Split::train, config.data_dir);
  nn::Dataset test = nn::load_fashion_mnist(nn::Split::test, config.data_dir);
  if (!options.json) {
    std::printf(
        "solo training: MLP 784-256-128-10 (%s), %s lr=%g, batch %zu, %zu epochs, seed %llu, %s\n",
        options.activation.c_str(), options.optimizer.c_str(),
        static_cast<double>(config.learning_rate), config.batch_size, config.epochs,
        static_cast<unsigned long long>(config.seed), options.device.c_str());
    std::printf("%6s %8s %11s %10s %9s %10s\n", "epoch", "steps", "train_loss", "test_loss",
                "test_acc", "samples/s");
    std::fflush(stdout);
  }
  auto reports = nn::train_solo(config, train, test, [&](const nn::EpochReport& r) {
    if (options.json) return;
    std::printf("%6zu %8zu %11.4f %10.4f %8.2f%% %10.0f\n", r.epoch, r.steps, r.train_loss,
                r.test_loss, 100.0 * r.test_accuracy, r.samples_per_second);
    std::fflush(stdout);
  });
  if (options.json) {
    nlohmann::json out;
    out["mode"] = "solo";
    out["optimizer"] = options.optimizer;
    out["learning_rate"] = config.learning_rate;
    out["batch_size"] = config.batch_size;
    out["seed"] = config.seed;
    out["device"] = options.device;
    out["epochs"] = nlohmann::json::array();
    for (const auto& r : reports) {
      out["epochs"].push_back({{"epoch", r.epoch},
                               {"steps", r.steps},
                               {"train_loss", r.train_loss},
                               {"test_loss", r.test_loss},
                               {"test_accuracy", r.test_accuracy},
                               {"train_seconds", r.train_seconds},
                               {"samples_per_second", r.samples_per_second}});
    }
    out["final_test_accuracy"] = reports.empty() ? 0.0 : reports.back().test_accuracy;
    std::printf("%s\n", out.dump().c_str());
  }
  return 0;
}

const Registration registration{
    "train", 40, [](CLI::App& app) -> std::function<int()> {
      auto options = std::make_shared<TrainOptions>();
      CLI::App* cmd =
          app.add_subcommand("train", "Train the model (--solo: alone, in this process)");
      cmd->add_flag("--solo", options->solo, "train alone on Fashion-MNIST, no network");
      cmd->add_option("--epochs", options->config.epochs, "passes over the training set")
          ->capture_default_str()
          ->check(CLI::Range(1, 1000));
      cmd->add_option("--batch-size", options->config.batch_size, "examples per step")
          ->capture_default_str()
          ->check(CLI::Range(1, 65536));
      cmd->add_option(
             "--lr", options->learning_rate,
             "peak learning rate, cosine-decayed (default: adam 1e-3, lamb 1e-2, sgd 5e-2)")
          ->check(CLI::PositiveNumber);
      cmd->add_option("--optimizer", options->optimizer, "sgd | adam | lamb")
          ->capture_default_str()
          ->check(CLI::IsMember({"sgd", "adam", "lamb"}));
      cmd->add_option("--seed", options->config.seed, "initialization and shuffling seed")
          ->capture_default_str();
      cmd->add_option("--activation", options->activation, "relu | gelu")
          ->capture_default_str()
          ->check(CLI::IsMember({"relu", "gelu"}));
      cmd->add_option("--device", options->device, "cpu | cuda")
          ->capture_default_str()
          ->check(CLI::IsMember({"cpu", "cuda"}));
      cmd->add_option("--data-dir", options->config.data_dir, "Fashion-MNIST directory")
          ->capture_default_str();
      cmd->add_flag("--json", options->json, "print one JSON object instead of the table");
      return [options] { return run_train(*options); };
    }};

}  // namespace
}  // namespace apiary::tools
