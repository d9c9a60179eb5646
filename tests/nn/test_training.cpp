// A short solo training run on the real Fashion-MNIST data.
#include "nn/solo_training.hpp"

#include <gtest/gtest.h>

using namespace apiary::nn;

TEST(SoloTraining, FewHundredStepsLearnFashionMnist) {
  if (!fashion_mnist_available()) {
    GTEST_SKIP() << "Fashion-MNIST missing: apt-get install dataset-fashion-mnist";
  }
  Dataset train = load_fashion_mnist(Split::train);
  Dataset test = load_fashion_mnist(Split::test);
  ASSERT_EQ(train.size(), 60000u);
  ASSERT_EQ(test.size(), 10000u);
  SoloTrainConfig config;
  config.epochs = 1;
  config.batch_size = 64;
  config.max_steps_per_epoch = 300;
  config.seed = 7;
  auto reports = train_solo(config, train, test);
  ASSERT_EQ(reports.size(), 1u);
  EXPECT_EQ(reports[0].steps, 300u);
  // Chance is 10 %; 300 Adam steps reach ~80 %.
  EXPECT_GT(reports[0].test_accuracy, 0.70) << reports[0].test_accuracy;
  EXPECT_LT(reports[0].test_loss, 1.0);
}
