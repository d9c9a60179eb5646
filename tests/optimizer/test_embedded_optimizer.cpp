// apiary::Optimizer, the embedder's facade: alone, with bad options, and two
// of them training together over a loopback DHT.
#include "optimizer/embedded_optimizer.hpp"

#include "core/error.hpp"
#include "core/identity.hpp"
#include "dht/runner.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <latch>
#include <random>
#include <span>
#include <thread>
#include <vector>

using namespace apiary;

namespace {

constexpr std::size_t kDim = 8;

float target(std::size_t i) {
  return 1.0f + static_cast<float>(i) * 0.25f;
}

// Least squares towards target(): loss ½‖w − t‖², so the gradient is w − t (plus noise).
void noisy_gradient(std::span<const float> w, std::span<float> g, std::mt19937& rng) {
  std::normal_distribution<float> noise(0.0f, 0.05f);
  for (std::size_t i = 0; i < w.size(); ++i) g[i] = w[i] - target(i) + noise(rng);
}

double distance_to_target(std::span<const float> w) {
  double d = 0;
  for (std::size_t i = 0; i < w.size(); ++i) d += std::pow(w[i] - target(i), 2);
  return std::sqrt(d);
}

}  // namespace

TEST(EmbeddedOptimizer, AloneAnEpochEndsEveryTargetBatch) {
  std::vector<float> w(kDim, 0.0f), g(kDim, 0.0f);
  std::mt19937 rng(1);
  OptimizerOptions options;
  options.run = "facade-solo";
  options.target_batch_size = 64;
  options.learning_rate = 0.1;
  Optimizer optimizer(options, w, g);
  EXPECT_EQ(optimizer.address(), "");
  const double before = distance_to_target(w);
  for (int call = 1; call <= 200; ++call) {
    noisy_gradient(w, g, rng);
    // 16 samples a step: every fourth call reaches the target of 64.
    EXPECT_EQ(optimizer.step(16), call % 4 == 0) << "call " << call;
  }
  EXPECT_EQ(optimizer.epoch(), 50u);
  EXPECT_TRUE(optimizer.last_epoch_averaged());  // a group of one averages trivially
  EXPECT_LT(distance_to_target(w), 0.2 * before);
}

TEST(EmbeddedOptimizer, BadOptionsNameTheField) {
  std::vector<float> w(kDim, 0.0f), g(kDim, 0.0f);
  auto error_of = [&](const OptimizerOptions& options) -> std::string {
    try {
      Optimizer optimizer(options, w, g);
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), Errc::invalid_argument);
      return e.what();
    }
    return "";
  };
  OptimizerOptions options;
  options.run_config_json = R"({"optimizer": {"name": "rmsprop"}})";
  EXPECT_NE(error_of(options).find("optimizer.name"), std::string::npos);
  options.run_config_json = "{not json";
  EXPECT_NE(error_of(options).find("run_config_json"), std::string::npos);
  options.run_config_json = "";
  options.run = "two words";
  EXPECT_NE(error_of(options).find("run may contain"), std::string::npos);
  options.run = "x";
  options.learning_rate = -1;
  EXPECT_NE(error_of(options).find("optimizer.lr"), std::string::npos);
  options.learning_rate = 0.1;
  options.peers = "not-an-address";
  EXPECT_NE(error_of(options).find("apiary://"), std::string::npos);
}

// Two embedders join one run through a DHT node: their epochs are averaged,
// so they end with the same parameters.
TEST(EmbeddedOptimizer, TwoPeersTrainTogether) {
  dht::DhtRunner bootstrap(dht::DhtRunner::tcp(Identity::generate(), {"127.0.0.1", 0}), {});
  OptimizerOptions options;
  options.peers = bootstrap.address().to_string();
  options.run = "facade-pair";
  options.target_batch_size = 128;
  options.learning_rate = 0.05;
  options.run_config_json = R"({"averaging": {"matchmaking_time": 1.0, "averaging_timeout": 5.0,
                                              "min_group_size": 2}})";
  constexpr std::uint64_t kEpochs = 4;
  std::vector<std::vector<float>> w(2, std::vector<float>(kDim, 0.0f)), g = w;
  std::vector<std::uint64_t> averaged(2, 0), epochs(2, 0);
  std::vector<std::thread> threads;
  std::latch both_joined(2);  // neither runs an epoch alone while the other joins
  for (std::size_t p = 0; p < 2; ++p) {
    threads.emplace_back([&, p] {
      std::mt19937 rng(static_cast<unsigned>(p) + 1);  // each peer its own noise
      Optimizer optimizer(options, w[p], g[p]);
      EXPECT_NE(optimizer.address().find("apiary://"), std::string::npos);
      both_joined.arrive_and_wait();
      const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(60);
      while (optimizer.epoch() < kEpochs && std::chrono::steady_clock::now() < give_up) {
        noisy_gradient(w[p], g[p], rng);
        if (optimizer.step(8)) averaged[p] += optimizer.last_epoch_averaged();
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
      }
      epochs[p] = optimizer.epoch();
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(epochs[0], kEpochs);
  EXPECT_EQ(epochs[1], kEpochs);
  EXPECT_EQ(averaged[0], kEpochs);
  EXPECT_EQ(averaged[1], kEpochs);
  EXPECT_EQ(w[0], w[1]) << "averaged every epoch: the same parameters";
}
