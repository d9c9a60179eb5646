// Local-update mode with averaging.overlap: the outer round travels on the
// worker thread while the next inner phase trains, and the outer step keeps
// the inner steps taken meanwhile (params = new anchor + (params - sent)).
#include "optimizer/collaborative_optimizer.hpp"
#include "tests/optimizer/fake_swarm.hpp"
#include "tests/optimizer/local_updates_util.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <thread>

using namespace apiary::optimizer;
using namespace apiary::optimizer::testing;  // FakeHub, FakeSwarm, local_updates_util.hpp
using namespace std::chrono_literals;

namespace {

constexpr std::size_t kDim = 8;

// Inner SGD at lr 0.1 on gradients of 1 (each inner step: -0.1), outer lr 0.5:
// the outer step moves the anchor half way to the mean.
CollaborativeOptions overlap_options(const std::string& run) {
  CollaborativeOptions o = local_update_options(run);
  o.config.averaging.overlap = true;
  o.config.averaging.outer_lr = 0.5;
  return o;
}

float anchor_of(const CollaborativeOptimizer& opt) {
  return opt.snapshot().tensors[1][0];  // params, outer anchor, outer momentum
}

// Steps `count` times; every call must not end an epoch.
void inner_steps(CollaborativeOptimizer& opt, int count) {
  for (int i = 0; i < count; ++i) ASSERT_FALSE(opt.step(8));
}

// A hub of its own (every report believed) and one overlapping peer on it,
// its gradients all 1, every average() taking at least `round_delay`.
struct OnePeer {
  std::shared_ptr<FakeHub> hub = std::make_shared<FakeHub>();
  std::vector<float> params = std::vector<float>(kDim, 0.0f);
  std::vector<float> grads = std::vector<float>(kDim, 1.0f);
  CollaborativeOptimizer opt{std::make_shared<FakeSwarm>(hub, "p"), overlap_options("one"), params,
                             grads};
  explicit OnePeer(std::chrono::milliseconds round_delay = 0ms) {
    hub->target = 1000;
    hub->round_delay = round_delay;
  }
};

}  // namespace

// Alone: the round leaves at step 4 (-0.4), training goes on, and the step
// that sees it back lands it — failed (nobody joined), so toward what was sent,
// at once (nobody else is around to average with later).
TEST(LocalUpdatesOverlap, OuterStepKeepsTheInnerStepsTakenWhileTheRoundTravelled) {
  OnePeer peer(100ms);
  auto& opt = peer.opt;
  auto& params = peer.params;
  inner_steps(opt, 4);  // the 4th launches the round and returns at once
  EXPECT_TRUE(opt.round_in_flight());
  inner_steps(opt, 1);  // not back yet (100 ms)
  EXPECT_NEAR(params[0], -0.5f, 1e-6);
  std::this_thread::sleep_for(400ms);
  EXPECT_TRUE(opt.step(8));  // back: lands
  EXPECT_FALSE(opt.round_in_flight());
  EXPECT_EQ(opt.epoch(), 1u);
  // Anchor 0 → half way to the mean -0.4 = -0.2; the two inner steps since
  // the round left (-0.2) are kept: -0.4 (without overlap it would be -0.2).
  EXPECT_NEAR(anchor_of(opt), -0.2f, 1e-6);
  EXPECT_NEAR(params[0], -0.4f, 1e-6);
  EXPECT_TRUE(opt.last_round().overlapped);
  EXPECT_FALSE(opt.last_round().averaged);
  EXPECT_TRUE(opt.last_round().applied);
  EXPECT_EQ(opt.failed_rounds(), 1u);
}

// A round slower than a phase: the next boundary waits for it, and the wait
// is counted as time blocked on the network.
TEST(LocalUpdatesOverlap, NextBoundaryWaitsForTheRoundStillInFlight) {
  OnePeer peer(500ms);
  auto& opt = peer.opt;
  auto& params = peer.params;
  inner_steps(opt, 4);
  inner_steps(opt, 3);
  const auto started = std::chrono::steady_clock::now();
  EXPECT_TRUE(opt.step(8));  // the 4th inner step of the next phase: a boundary
  EXPECT_GE(std::chrono::steady_clock::now() - started, 200ms);
  EXPECT_EQ(opt.epoch(), 1u);
  EXPECT_GE(opt.communication_blocked_seconds(), 0.2);
  EXPECT_NEAR(params[0], -0.2f - 0.4f, 1e-6);  // new anchor + the whole next phase
}

// Failed while another peer is around: postponed once (the phase goes on),
// then the retry fails too and the local delta of what was sent is applied.
TEST(LocalUpdatesOverlap, FailedRoundIsPostponedOnceThenApplied) {
  OnePeer peer;
  peer.hub->fail_averaging = true;
  report_epoch(*peer.hub, "other", 0);
  auto& opt = peer.opt;
  auto& params = peer.params;
  inner_steps(opt, 4);
  std::this_thread::sleep_for(200ms);
  inner_steps(opt, 1);  // lands failed: postponed
  EXPECT_EQ(opt.epoch(), 0u);
  EXPECT_EQ(opt.failed_rounds(), 1u);
  EXPECT_FALSE(opt.last_round().applied);
  inner_steps(opt, 3);  // a whole phase since the first round left: the retry leaves
  EXPECT_TRUE(opt.round_in_flight());
  std::this_thread::sleep_for(200ms);
  EXPECT_TRUE(opt.step(8));
  EXPECT_EQ(opt.failed_rounds(), 2u);
  EXPECT_FALSE(opt.last_round().averaged);
  // Sent at -0.8: anchor half way there (-0.4), plus the step since (-0.1).
  EXPECT_NEAR(anchor_of(opt), -0.4f, 1e-6);
  EXPECT_NEAR(params[0], -0.5f, 1e-6);
}

// finish() at the end of the data: the round in flight lands.
TEST(LocalUpdatesOverlap, FinishEpochLandsTheRoundInFlight) {
  OnePeer peer(100ms);
  auto& opt = peer.opt;
  auto& params = peer.params;
  inner_steps(opt, 4);
  EXPECT_TRUE(opt.finish_epoch(5s));
  EXPECT_EQ(opt.epoch(), 1u);
  EXPECT_NEAR(params[0], -0.2f, 1e-6);
  EXPECT_FALSE(opt.finish_epoch(5s));  // nothing in flight any more
}

// Two peers with different gradients: both anchors land on the same point, and
// each peer's parameters are that anchor plus whole inner steps of its own.
TEST(LocalUpdatesOverlap, TwoPeersLandOnOneAnchor) {
  auto hub = std::make_shared<FakeHub>();
  hub->target = 1000;
  hub->group_wait = 2000ms;
  const auto o = overlap_options("two");
  std::vector<float> a_params(kDim, 0.0f), a_grads(kDim, 1.0f);
  std::vector<float> b_params(kDim, 0.0f), b_grads(kDim, 3.0f);
  CollaborativeOptimizer a(std::make_shared<FakeSwarm>(hub, "a"), o, a_params, a_grads);
  CollaborativeOptimizer b(std::make_shared<FakeSwarm>(hub, "b"), o, b_params, b_grads);
  run_both_to_first_outer_step(a, b, o.config.averaging.local_steps);
  ASSERT_EQ(a.epoch(), 1u);
  ASSERT_EQ(b.epoch(), 1u);
  EXPECT_TRUE(a.last_round().averaged);
  EXPECT_TRUE(b.last_round().averaged);
  EXPECT_NEAR(anchor_of(a), anchor_of(b), 1e-6);
  EXPECT_LT(anchor_of(a), 0.0f);
  for (auto [params, step] : {std::pair{&a_params, 0.1f}, std::pair{&b_params, 0.3f}}) {
    const float kept = (anchor_of(a) - (*params)[0]) / step;  // inner steps since it was sent
    EXPECT_NEAR(kept, std::round(kept), 1e-3);
    EXPECT_GE(std::round(kept), 0.0f);
  }
}
