// Local-update mode (DiLoCo): the anchors of the peers stay equal. A peer that
// fell behind the swarm (its round failed while the others averaged) takes the
// state of a peer ahead as soon as it sees it, a failed round is postponed
// rather than applied alone while others are around, and the outer round is
// matched ahead of time.
#include "optimizer/collaborative_optimizer.hpp"
#include "tests/optimizer/fake_swarm.hpp"
#include "tests/optimizer/local_updates_util.hpp"

#include <gtest/gtest.h>

using namespace apiary::optimizer;
using namespace apiary::optimizer::testing;  // FakeHub, FakeSwarm, local_updates_util.hpp

namespace {

constexpr std::size_t kDim = 16;

}  // namespace

TEST(LocalUpdatesCatchUp, PeerBehindLoadsStateAtOnceAndResumesFromTheAnchor) {
  auto hub = std::make_shared<FakeHub>();
  hub->target = 1000;  // every report is believed (see RunConfig::epoch_samples_bound)
  hub->group_wait = std::chrono::milliseconds(100);
  const auto o = local_update_options("catch-up");

  // The peer ahead: epoch 7, anchor all 3, its parameters 2 (its own inner
  // steps since the anchor, which its delta will bring to the next round).
  std::vector<float> ahead_params(kDim, 0.0f), ahead_grads(kDim, 0.0f);
  CollaborativeOptimizer ahead(std::make_shared<FakeSwarm>(hub, "ahead"), o, ahead_params,
                               ahead_grads);
  StateSnapshot state = ahead.snapshot();
  ASSERT_EQ(state.tensors.size(), 3u);  // params, outer anchor, outer momentum (SGD: no buffers)
  state.epoch = 7;
  std::fill(state.tensors[0].begin(), state.tensors[0].end(), 2.0f);
  std::fill(state.tensors[1].begin(), state.tensors[1].end(), 3.0f);
  ahead.restore(state);
  report_epoch(*hub, "ahead", 7);

  std::vector<float> params(kDim, 0.0f), grads(kDim, 1.0f);
  CollaborativeOptimizer behind(std::make_shared<FakeSwarm>(hub, "behind"), o, params, grads);
  EXPECT_TRUE(behind.step(8));  // the first inner step sees the swarm ahead
  EXPECT_EQ(behind.epoch(), 7u);
  EXPECT_EQ(params, std::vector<float>(kDim, 3.0f)) << "not resumed from the anchor";
  EXPECT_EQ(behind.failed_rounds(), 0u) << "it averaged alone instead of catching up";
  // A fresh inner phase: the next outer boundary is local_steps inner steps away.
  for (std::uint32_t i = 1; i < o.config.averaging.local_steps; ++i) EXPECT_FALSE(behind.step(8));
  EXPECT_EQ(behind.epoch(), 7u);
}

TEST(LocalUpdatesCatchUp, FailedRoundIsPostponedOnceWhileOthersAreAround) {
  auto hub = std::make_shared<FakeHub>();
  hub->target = 1000;  // every report is believed (see RunConfig::epoch_samples_bound)
  hub->group_wait = std::chrono::milliseconds(50);
  hub->fail_averaging = true;
  const auto o = local_update_options("postpone");
  report_epoch(*hub, "other", 0);  // a peer at the same epoch that does not step

  std::vector<float> params(kDim, 0.0f), grads(kDim, 1.0f);
  CollaborativeOptimizer opt(std::make_shared<FakeSwarm>(hub, "self"), o, params, grads);
  const std::uint32_t steps = o.config.averaging.local_steps;
  for (std::uint32_t i = 0; i < steps; ++i) EXPECT_FALSE(opt.step(8));
  // Postponed: no outer step, the inner steps go on from where they were.
  EXPECT_EQ(opt.epoch(), 0u);
  EXPECT_EQ(opt.failed_rounds(), 1u);
  EXPECT_FALSE(opt.last_round().applied);
  EXPECT_FLOAT_EQ(params[0], -0.1f * static_cast<float>(steps));
  // Failed again: the local delta of both phases is applied (outer lr 1:
  // the parameters where the inner steps went), and the epoch advances.
  for (std::uint32_t i = 1; i < steps; ++i) EXPECT_FALSE(opt.step(8));
  EXPECT_TRUE(opt.step(8));
  EXPECT_EQ(opt.epoch(), 1u);
  EXPECT_EQ(opt.failed_rounds(), 2u);
  EXPECT_TRUE(opt.last_round().applied);
  EXPECT_FALSE(opt.last_round().averaged);
  EXPECT_NEAR(params[0], -0.1f * static_cast<float>(2 * steps), 1e-5);
}

TEST(LocalUpdatesCatchUp, AnchorsThatDifferAreDrawnTogether) {
  // Two peers whose anchors differ (one took an outer step alone): the
  // parameters are averaged, so one round with outer lr 1 and no momentum
  // puts both anchors at their weighted mean (averaged deltas would have
  // kept them 1 apart for good).
  auto hub = std::make_shared<FakeHub>();
  hub->target = 1000;
  hub->group_wait = std::chrono::milliseconds(2000);
  const auto o = local_update_options("reconcile");
  std::vector<float> pa(kDim, 0.0f), ga(kDim, 0.0f), pb(kDim, 0.0f), gb(kDim, 0.0f);
  CollaborativeOptimizer a(std::make_shared<FakeSwarm>(hub, "a"), o, pa, ga);
  CollaborativeOptimizer b(std::make_shared<FakeSwarm>(hub, "b"), o, pb, gb);
  StateSnapshot moved = a.snapshot();
  std::fill(moved.tensors[0].begin(), moved.tensors[0].end(), 1.0f);
  std::fill(moved.tensors[1].begin(), moved.tensors[1].end(), 1.0f);
  a.restore(moved);
  run_both_to_first_outer_step(a, b, o.config.averaging.local_steps);
  ASSERT_EQ(a.failed_rounds() + b.failed_rounds(), 0u);
  const auto anchor_a = a.snapshot().tensors[1], anchor_b = b.snapshot().tensors[1];
  // Equal up to rounding: 1 - (1 - m) and 0 - (0 - m) need not be the same float.
  for (std::size_t i = 0; i < kDim; ++i) EXPECT_NEAR(anchor_a[i], anchor_b[i], 1e-6f) << i;
  EXPECT_GT(anchor_a[0], 0.0f);
  EXPECT_LT(anchor_a[0], 1.0f);
}

TEST(LocalUpdatesCatchUp, AlonePeerAppliesAFailedRoundAtOnce) {
  auto hub = std::make_shared<FakeHub>();
  hub->target = 1000;  // every report is believed (see RunConfig::epoch_samples_bound)
  hub->group_wait = std::chrono::milliseconds(50);
  hub->fail_averaging = true;
  const auto o = local_update_options("alone");
  std::vector<float> params(kDim, 0.0f), grads(kDim, 1.0f);
  CollaborativeOptimizer opt(std::make_shared<FakeSwarm>(hub, "self"), o, params, grads);
  for (std::uint32_t i = 1; i < o.config.averaging.local_steps; ++i) EXPECT_FALSE(opt.step(8));
  EXPECT_TRUE(opt.step(8));
  EXPECT_EQ(opt.epoch(), 1u);
  EXPECT_EQ(opt.failed_rounds(), 1u);
}

TEST(LocalUpdatesCatchUp, OuterRoundIsMatchedAheadAndAveraged) {
  auto hub = std::make_shared<FakeHub>();
  hub->target = 1000;
  hub->group_wait = std::chrono::milliseconds(2000);
  auto o = local_update_options("ahead");
  o.config.averaging.matchmaking_time = 1000.0;  // any speed: matched from the first step
  std::vector<float> pa(kDim, 0.0f), ga(kDim, 1.0f), pb(kDim, 0.0f), gb(kDim, 3.0f);
  CollaborativeOptimizer a(std::make_shared<FakeSwarm>(hub, "a"), o, pa, ga);
  CollaborativeOptimizer b(std::make_shared<FakeSwarm>(hub, "b"), o, pb, gb);
  run_both_to_first_outer_step(a, b, o.config.averaging.local_steps);
  EXPECT_GE(hub->prepare_calls(), 2u);
  EXPECT_EQ(a.epoch(), 1u);
  EXPECT_EQ(b.epoch(), 1u);
  EXPECT_EQ(a.failed_rounds() + b.failed_rounds(), 0u);
  // One mean delta for both: the anchors agree, between the two peers' own.
  const auto anchor_a = a.snapshot().tensors[1], anchor_b = b.snapshot().tensors[1];
  EXPECT_EQ(anchor_a, anchor_b);
  EXPECT_LT(anchor_a[0], -0.1f + 1e-6f);
  EXPECT_GT(anchor_a[0], -0.1f * 3.0f * static_cast<float>(o.config.averaging.local_steps));
  EXPECT_EQ(pa, anchor_a);
}
