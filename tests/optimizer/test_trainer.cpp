// The training loop on the real Fashion-MNIST data, as a group of one.
#include "optimizer/trainer.hpp"

#include "nn/fashion_mnist.hpp"

#include <gtest/gtest.h>

using namespace apiary::optimizer;

TEST(Trainer, SoloRunLearnsFashionMnist) {
  if (!apiary::nn::fashion_mnist_available())
    GTEST_SKIP() << "dataset-fashion-mnist is not installed";
  TrainerOptions options;
  options.config =
      RunConfig::parse_json(R"({"run": "solo-test", "target_batch_size": 256, "batch_size": 64,
      "optimizer": {"name": "adam", "lr": 0.002}})");
  auto swarm = std::make_shared<SoloSwarm>(options.config.target_batch_size);
  options.max_epochs = 60;  // 60 × 256 = 15 360 samples, a quarter of the data
  options.eval_every_epochs = 20;
  options.eval_samples = 2000;
  int epoch_statuses = 0;
  options.on_status = [&](const TrainerStatus& s) { epoch_statuses += s.epoch_ended; };
  auto summary = run_training(swarm, options);
  EXPECT_EQ(summary.last.epoch, 60u);
  EXPECT_EQ(summary.last.averaged_rounds, 60u);
  EXPECT_EQ(epoch_statuses, 60);
  EXPECT_GT(summary.last.test_accuracy, 0.70) << "a quarter epoch of Adam should pass 70 %";
  EXPECT_LT(summary.last.loss, 1.0);
}
