// `apiary train --solo`: trains the MLP on Fashion-MNIST in this process and
// prints loss and test accuracy per epoch. With --config it is the same run as
// `apiary join` (run configuration, optimizer/trainer) in one process, the
// baseline that collaborative runs are compared against.
#include "core/error.hpp"
#include "core/memory_tuning.hpp"
#include "dht/runner.hpp"
#include "kernels/device.hpp"
#include "nn/solo_training.hpp"
#include "optimizer/model_factory.hpp"
#include "optimizer/run_config.hpp"
#include "optimizer/trainer.hpp"
#include "tools/cli_common.hpp"
#include "tools/command.hpp"
#include "tools/progress_printer.hpp"
#include "tools/training_report.hpp"

#include <nlohmann/json.hpp>

#include <cstdio>
#include <fstream>
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
  // --config: the run configuration's training loop with a swarm of one.
  std::string config_file;
  std::uint32_t max_epochs = 0;
  double time_limit = 0;
  std::uint32_t eval_every = 1;
  std::string summary_file;
  bool quiet = false;
  std::vector<std::string> peers;  // --config of a moe-mlp run: the experts' DHT
  CLI::Option* batch_size_given = nullptr;
  CLI::Option* data_given = nullptr;
  CLI::Option* seed_given = nullptr;
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

// Progress on stderr at most once a second, summary on stdout.
int run_config_training(const TrainOptions& o) {
  install_stop_handler();
  if (o.device != "cpu") throw UsageError("--config trains on the CPU only (--device cpu)");
  const optimizer::RunConfig config = optimizer::RunConfig::load_file(o.config_file);
  auto swarm = std::make_shared<optimizer::SoloSwarm>(config.target_batch_size);
  optimizer::TrainerOptions trainer;
  trainer.config = config;
  if (*o.data_given) trainer.data_dir = o.config.data_dir;
  if (*o.batch_size_given) trainer.batch_size = static_cast<std::uint32_t>(o.config.batch_size);
  if (*o.seed_given) trainer.data_seed = o.config.seed;
  trainer.max_epochs = o.max_epochs;
  trainer.time_limit_seconds = o.time_limit;
  trainer.eval_every_epochs = o.eval_every;
  trainer.stop = &stop_requested();
  // A moe-mlp model calls remote experts even alone: find them through --peers
  // (without, the model factory says so).
  std::unique_ptr<dht::DhtRunner> expert_dht;
  if (!o.peers.empty() && !optimizer::needs_expert_dht(config.model))
    throw UsageError("--peers: this run calls no remote experts (only moe-mlp runs do)");
  if (!o.peers.empty()) {
    expert_dht = optimizer::connect_expert_dht(parse_peers(o.peers));
    trainer.expert_dht = expert_dht.get();
  }
  double last_line = -1e9;
  auto printer = std::make_shared<ProgressPrinter>(stderr);  // a live line on a terminal
  trainer.on_status = [&, printer](const optimizer::TrainerStatus& s) {
    if (o.quiet || s.seconds - last_line < 1.0) return;
    last_line = s.seconds;
    printer->update(progress_line(s));
  };
  if (!o.quiet) {
    std::fprintf(
        stderr,
        "solo run '%s' in one process: %s lr %g, %llu samples per epoch, batch %u, "
        "%u epochs%s\n",
        config.run.c_str(), std::string(optimizer::name_of(config.optimizer.name)).c_str(),
        config.optimizer.lr, static_cast<unsigned long long>(config.target_batch_size),
        trainer.batch_size ? trainer.batch_size : config.batch_size,
        o.max_epochs ? o.max_epochs : config.max_epochs,
        o.time_limit > 0 ? (", time limit " + std::to_string(o.time_limit) + " s").c_str() : "");
  }
  const auto summary = optimizer::run_training(swarm, trainer);
  auto out = summary_json(summary);
  out["mode"] = "solo";
  out["run"] = config.run;
  out["target_batch_size"] = config.target_batch_size;
  out["batch_size"] = trainer.batch_size ? trainer.batch_size : config.batch_size;
  if (!o.summary_file.empty()) std::ofstream(o.summary_file) << out.dump(2) << '\n';
  if (o.json)
    std::printf("%s\n", out.dump().c_str());
  else
    std::printf("%s\n", finished_line(summary, stop_requested()).c_str());
  return 0;
}

int run_train(const TrainOptions& options) {
  // Every step frees and reallocates the same large tensor buffers: keep them mapped.
  tune_allocator_for_large_buffers();
  if (!options.solo) {
    std::fprintf(stderr,
                 "apiary train: only --solo training is available (to train with others, start "
                 "`apiary coordinator --config FILE` and `apiary join`)\n");
    return 2;
  }
  if (!options.config_file.empty()) return run_config_training(options);
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
      auto* config =
          cmd->add_option("--config", options->config_file,
                          "run configuration (as for `apiary coordinator`): the same run as "
                          "`apiary join`, alone")
              ->check(CLI::ExistingFile);
      cmd->add_option("--max-epochs", options->max_epochs,
                      "--config: stop after this epoch (default: the run's)")
          ->needs(config);
      cmd->add_option("--time-limit", options->time_limit, "--config: stop after this many seconds")
          ->needs(config);
      cmd->add_option("--eval-every", options->eval_every,
                      "--config: evaluate every N epochs (0: only at the end)")
          ->capture_default_str()
          ->needs(config);
      cmd->add_option("--summary", options->summary_file,
                      "--config: write the final summary as JSON to this file")
          ->needs(config);
      cmd->add_flag("--quiet", options->quiet, "--config: no progress lines")->needs(config);
      cmd->add_option("--peers", options->peers,
                      "--config of a moe-mlp run: a peer of the DHT its expert servers joined")
          ->needs(config);
      cmd->add_option("--epochs", options->config.epochs, "passes over the training set")
          ->capture_default_str()
          ->check(CLI::Range(1, 1000))
          ->excludes(config);
      options->batch_size_given = cmd->add_option("--batch-size", options->config.batch_size,
                                                  "examples per step (--config: default the run's)")
                                      ->capture_default_str()
                                      ->check(CLI::Range(1, 65536));
      cmd->add_option(
             "--lr", options->learning_rate,
             "peak learning rate, cosine-decayed (default: adam 1e-3, lamb 1e-2, sgd 5e-2)")
          ->check(CLI::PositiveNumber)
          ->excludes(config);
      cmd->add_option("--optimizer", options->optimizer, "sgd | adam | lamb")
          ->capture_default_str()
          ->check(CLI::IsMember({"sgd", "adam", "lamb"}))
          ->excludes(config);
      options->seed_given =
          cmd->add_option("--seed", options->config.seed,
                          "initialization and shuffling seed (--config: shuffling only)")
              ->capture_default_str();
      cmd->add_option("--activation", options->activation, "relu | gelu")
          ->capture_default_str()
          ->check(CLI::IsMember({"relu", "gelu"}))
          ->excludes(config);
      cmd->add_option("--device", options->device, "cpu | cuda")
          ->capture_default_str()
          ->check(CLI::IsMember({"cpu", "cuda"}));
      options->data_given = cmd->add_option("--data-dir,--data", options->config.data_dir,
                                            "Fashion-MNIST directory (--config: default the run's)")
                                ->capture_default_str();
      cmd->add_flag("--json", options->json,
                    "print one JSON object instead of the table (--config: the summary)");
      return [options] { return run_train(*options); };
    }};

}  // namespace
}  // namespace apiary::tools
