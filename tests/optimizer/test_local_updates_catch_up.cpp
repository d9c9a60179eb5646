// Local-update mode (DiLoCo): a peer that fell behind the swarm (its round
// failed while the others averaged) takes the state of a peer ahead at its
// next outer boundary instead of averaging alone for ever after.
#include "optimizer/collaborative_optimizer.hpp"
#include "tests/optimizer/fake_swarm.hpp"

#include <gtest/gtest.h>

using namespace apiary::optimizer;
using apiary::optimizer::testing::FakeHub;
using apiary::optimizer::testing::FakeSwarm;

TEST(LocalUpdatesCatchUp, PeerBehindLoadsStateAtItsOuterBoundary) {
  constexpr std::size_t kDim = 16;
  auto hub = std::make_shared<FakeHub>();
  hub->group_wait = std::chrono::milliseconds(100);
  CollaborativeOptions o;
  o.config.run = "catch-up";
  o.config.optimizer.name = OptimizerName::sgd;
  o.config.optimizer.lr = 0.1;
  o.config.optimizer.momentum = 0.0;
  o.config.averaging.mode = AveragingMode::local_updates;
  o.config.averaging.local_steps = 4;
  o.load_state_on_start = false;

  // The peer ahead: epoch 7, parameters all 3.
  std::vector<float> ahead_params(kDim, 0.0f), ahead_grads(kDim, 0.0f);
  CollaborativeOptimizer ahead(std::make_shared<FakeSwarm>(hub, "ahead"), o, ahead_params,
                               ahead_grads);
  StateSnapshot state = ahead.snapshot();
  state.epoch = 7;
  std::fill(state.tensors[0].begin(), state.tensors[0].end(), 3.0f);
  ahead.restore(state);
  PeerProgress progress;
  progress.epoch = 7;
  progress.report_time = hub->now();
  hub->report("ahead", progress);

  std::vector<float> params(kDim, 0.0f), grads(kDim, 1.0f);
  CollaborativeOptimizer behind(std::make_shared<FakeSwarm>(hub, "behind"), o, params, grads);
  for (std::uint32_t i = 1; i < o.config.averaging.local_steps; ++i) {
    EXPECT_FALSE(behind.step(8));  // inner steps: nothing to catch up on yet
    EXPECT_EQ(behind.epoch(), 0u);
  }
  EXPECT_TRUE(behind.step(8));  // the outer boundary
  EXPECT_EQ(behind.epoch(), 7u);
  EXPECT_EQ(params, std::vector<float>(kDim, 3.0f));
  EXPECT_EQ(behind.failed_rounds(), 0u) << "it averaged alone instead of catching up";
}
