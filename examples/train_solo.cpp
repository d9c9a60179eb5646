// Trains a 784-256-128-10 MLP on Fashion-MNIST alone, with Adam, and prints loss
// and test accuracy per epoch. Usage: train_solo [epochs] [seed]
#include "nn/solo_training.hpp"

#include <cstdio>
#include <cstdlib>
#include <exception>

int main(int argc, char** argv) {
  apiary::nn::SoloTrainConfig config;  // Adam, lr 1e-3, batch 128, 3 epochs
  if (argc > 1) config.epochs = std::strtoul(argv[1], nullptr, 10);
  if (argc > 2) config.seed = std::strtoull(argv[2], nullptr, 10);
  try {
    std::printf("epoch  train_loss  test_loss  test_accuracy\n");
    apiary::nn::train_solo(config, [](const apiary::nn::EpochReport& r) {
      std::printf("%5zu  %10.4f  %9.4f  %12.2f%%\n", r.epoch, r.train_loss, r.test_loss,
                  100.0 * r.test_accuracy);
      std::fflush(stdout);
    });
  } catch (const std::exception& e) {
    std::fprintf(stderr, "train_solo: %s\n", e.what());
    return 1;
  }
  return 0;
}
