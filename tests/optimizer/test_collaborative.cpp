// CollaborativeOptimizer logic over the in-memory FakeSwarm (threads, no sockets).
#include "optimizer/collaborative_optimizer.hpp"
#include "tests/optimizer/fake_swarm.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <random>
#include <thread>

using namespace apiary::optimizer;
using apiary::optimizer::testing::FakeHub;
using apiary::optimizer::testing::FakeSwarm;

namespace {

constexpr std::size_t kDim = 8;

// Linear regression y = w*·x: each peer draws its own samples.
struct Peer {
  std::vector<float> params = std::vector<float>(kDim, 0.0f);
  std::vector<float> grads = std::vector<float>(kDim, 0.0f);
  std::mt19937 rng;
  std::vector<float> truth;
  explicit Peer(unsigned seed) : rng(seed) {
    for (std::size_t i = 0; i < kDim; ++i) truth.push_back(static_cast<float>(i) * 0.25f - 1.0f);
  }
  void compute_gradients(std::size_t batch) {
    std::normal_distribution<float> n;
    std::fill(grads.begin(), grads.end(), 0.0f);
    for (std::size_t b = 0; b < batch; ++b) {
      float x[kDim], err = 0;
      for (std::size_t i = 0; i < kDim; ++i) {
        x[i] = n(rng);
        err += (params[i] - truth[i]) * x[i];
      }
      for (std::size_t i = 0; i < kDim; ++i) grads[i] += err * x[i] / static_cast<float>(batch);
    }
  }
  double distance() const {
    double d = 0;
    for (std::size_t i = 0; i < kDim; ++i) d += (params[i] - truth[i]) * (params[i] - truth[i]);
    return d;
  }
};

CollaborativeOptions options(std::uint64_t target) {
  CollaborativeOptions o;
  o.run = "test";
  o.target_batch_size = target;
  o.optimizer.name = "sgd";
  o.optimizer.lr = 0.1;
  o.optimizer.momentum = 0.0;
  o.averaging.average_state_every = 1;
  o.averaging.averaging_timeout = 2.0;
  o.report_period_seconds = 0.0;  // report every step: the fake hub is free
  return o;
}

std::size_t hash_of(const std::vector<float>& v) {
  return std::hash<std::string_view>{}(
      std::string_view(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(float)));
}

}  // namespace

TEST(CollaborativeOptimizer, PeersHoldIdenticalParametersAfterEachAveragedEpoch) {
  auto hub = std::make_shared<FakeHub>();
  hub->target = 192;
  constexpr int kPeers = 3, kEpochs = 6;
  std::vector<std::unique_ptr<Peer>> peers;
  std::vector<std::map<std::uint64_t, std::size_t>> hashes(kPeers);
  std::vector<std::map<std::uint64_t, bool>> full_group(kPeers);
  for (int p = 0; p < kPeers; ++p) peers.push_back(std::make_unique<Peer>(100 + p));
  const double start_distance = peers[0]->distance();
  std::vector<std::thread> threads;
  for (int p = 0; p < kPeers; ++p) {
    threads.emplace_back([&, p] {
      auto swarm = std::make_shared<FakeSwarm>(hub, "peer" + std::to_string(p));
      auto opts = options(hub->target);
      opts.load_state_on_start = false;
      CollaborativeOptimizer opt(swarm, opts, peers[p]->params, peers[p]->grads);
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
      while (opt.epoch() < kEpochs && std::chrono::steady_clock::now() < deadline) {
        peers[p]->compute_gradients(16);
        if (opt.step(16)) {
          hashes[p][opt.epoch()] = hash_of(peers[p]->params);
          full_group[p][opt.epoch()] = opt.last_round().gradients.group_size == kPeers;
        }
        std::this_thread::sleep_for(std::chrono::microseconds(200));
      }
    });
  }
  for (auto& t : threads) t.join();
  int compared = 0;
  for (auto& [epoch, h] : hashes[0]) {
    bool all_full = true;
    for (int p = 0; p < kPeers; ++p) all_full &= full_group[p].count(epoch) && full_group[p][epoch];
    if (!all_full) continue;
    for (int p = 1; p < kPeers; ++p)
      EXPECT_EQ(hashes[p][epoch], h) << "epoch " << epoch << " peer " << p;
    ++compared;
  }
  EXPECT_GE(compared, kEpochs - 2) << "too few epochs averaged by the whole group";
  EXPECT_LT(peers[0]->distance(), 0.5 * start_distance) << "training did not make progress";
}

TEST(CollaborativeOptimizer, FailedAveragingProceedsWithLocalGradients) {
  auto hub = std::make_shared<FakeHub>();
  hub->target = 64;
  hub->fail_averaging = true;
  Peer peer(7);
  auto swarm = std::make_shared<FakeSwarm>(hub, "alone");
  CollaborativeOptimizer opt(swarm, options(hub->target), peer.params, peer.grads);
  const double before = peer.distance();
  for (int i = 0; i < 200 && opt.epoch() < 5; ++i) {
    peer.compute_gradients(16);
    opt.step(16);
  }
  EXPECT_EQ(opt.epoch(), 5u);
  EXPECT_EQ(opt.failed_rounds(), 5u);
  EXPECT_FALSE(opt.last_round().averaged);
  EXPECT_LT(peer.distance(), before);
}

TEST(CollaborativeOptimizer, SlowPeerContributesWithoutBlocking) {
  auto hub = std::make_shared<FakeHub>();
  hub->target = 256;
  constexpr int kEpochs = 4;
  std::vector<std::unique_ptr<Peer>> peers;
  for (int p = 0; p < 3; ++p) peers.push_back(std::make_unique<Peer>(200 + p));
  std::atomic<std::uint64_t> slow_contributed{0};
  std::vector<std::uint64_t> final_epoch(3);
  std::vector<std::thread> threads;
  for (int p = 0; p < 3; ++p) {
    threads.emplace_back([&, p] {
      auto swarm = std::make_shared<FakeSwarm>(hub, "peer" + std::to_string(p));
      auto opts = options(hub->target);
      opts.load_state_on_start = false;
      CollaborativeOptimizer opt(swarm, opts, peers[p]->params, peers[p]->grads);
      const auto pause = std::chrono::microseconds(p == 2 ? 1500 : 500);  // peer 2 is 3× slower
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
      while (opt.epoch() < kEpochs && std::chrono::steady_clock::now() < deadline) {
        peers[p]->compute_gradients(8);
        if (opt.step(8) && p == 2) slow_contributed += opt.last_round().local_samples;
        std::this_thread::sleep_for(pause);
      }
      final_epoch[p] = opt.epoch();
    });
  }
  for (auto& t : threads) t.join();
  for (int p = 0; p < 3; ++p) EXPECT_GE(final_epoch[p], static_cast<std::uint64_t>(kEpochs)) << p;
  EXPECT_GT(slow_contributed.load(), 0u);
  // The slow peer contributes less than a third of the samples: the others did not wait for it.
  EXPECT_LT(slow_contributed.load(), kEpochs * hub->target / 3);
}

TEST(CollaborativeOptimizer, LateJoinerDownloadsStateAndMatches) {
  auto hub = std::make_shared<FakeHub>();
  hub->target = 32;
  hub->group_wait = std::chrono::milliseconds(200);
  Peer first(1), late(2);
  auto swarm1 = std::make_shared<FakeSwarm>(hub, "first");
  CollaborativeOptimizer opt1(swarm1, options(hub->target), first.params, first.grads);
  for (int i = 0; i < 100 && opt1.epoch() < 3; ++i) {
    first.compute_gradients(16);
    opt1.step(16);
  }
  ASSERT_EQ(opt1.epoch(), 3u);
  auto swarm2 = std::make_shared<FakeSwarm>(hub, "late");
  CollaborativeOptimizer opt2(swarm2, options(hub->target), late.params, late.grads);
  EXPECT_EQ(opt2.epoch(), 3u);
  EXPECT_EQ(late.params, first.params);
}

TEST(CollaborativeOptimizer, LocalUpdateModeConverges) {
  auto hub = std::make_shared<FakeHub>();
  hub->target = 1;
  hub->group_wait = std::chrono::milliseconds(300);
  std::vector<std::unique_ptr<Peer>> peers;
  for (int p = 0; p < 2; ++p) peers.push_back(std::make_unique<Peer>(300 + p));
  const double before = peers[0]->distance();
  std::vector<std::thread> threads;
  std::vector<std::uint64_t> outer_steps(2);
  for (int p = 0; p < 2; ++p) {
    threads.emplace_back([&, p] {
      auto swarm = std::make_shared<FakeSwarm>(hub, "peer" + std::to_string(p));
      auto opts = options(1);
      opts.load_state_on_start = false;
      opts.averaging.mode = "local_updates";
      opts.averaging.local_steps = 10;
      opts.averaging.outer_lr = 0.7;
      opts.averaging.outer_momentum = 0.9;
      CollaborativeOptimizer opt(swarm, opts, peers[p]->params, peers[p]->grads);
      for (int i = 0; i < 100; ++i) {
        peers[p]->compute_gradients(16);
        opt.step(16);
      }
      outer_steps[p] = opt.epoch();
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(outer_steps[0], 10u);
  EXPECT_LT(peers[0]->distance(), 0.1 * before);
}
