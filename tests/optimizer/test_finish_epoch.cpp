// The end of an epoch over the in-memory FakeSwarm: finish_epoch (a peer at
// the end of its data contributes the samples of its last, partial epoch) and
// the round's deadline, which allows for the leader's batch in compute.
#include "optimizer/collaborative_optimizer.hpp"
#include "tests/optimizer/fake_swarm.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

using namespace apiary::optimizer;
using apiary::optimizer::testing::FakeHub;
using apiary::optimizer::testing::FakeSwarm;
using namespace std::chrono_literals;

namespace {

constexpr std::size_t kDim = 6;

struct Buffers {
  std::vector<float> params = std::vector<float>(kDim, 0.5f);
  std::vector<float> grads = std::vector<float>(kDim, 0.0f);
  void fill_gradients(float value) { std::fill(grads.begin(), grads.end(), value); }
};

CollaborativeOptions sgd_options(std::uint64_t target) {
  CollaborativeOptions o;
  o.config.run = "finish";
  o.config.target_batch_size = target;
  o.config.optimizer.name = OptimizerName::sgd;
  o.config.optimizer.lr = 0.1;
  o.config.optimizer.momentum = 0.0;
  o.config.averaging.average_state_every = 1000;  // gradient rounds only
  o.config.averaging.averaging_timeout = 2.0;
  o.load_state_on_start = false;
  return o;
}

}  // namespace

// Two peers stop at 30 of 40 samples: both wait, see that nobody adds samples,
// and step together with the samples they have (weighted by them).
TEST(FinishEpoch, PeersThatStopTogetherStepWithThePartialEpoch) {
  auto hub = std::make_shared<FakeHub>();
  hub->target = 40;
  hub->group_wait = 5000ms;
  // Frozen: no extrapolation, so only "nobody added samples" can end the epoch.
  hub->clock = [] { return 1000.0; };
  auto opts = sgd_options(hub->target);
  opts.clock = hub->clock;
  Buffers a_model, b_model;
  CollaborativeOptimizer a(std::make_shared<FakeSwarm>(hub, "a"), opts, a_model.params,
                           a_model.grads);
  CollaborativeOptimizer b(std::make_shared<FakeSwarm>(hub, "b"), opts, b_model.params,
                           b_model.grads);
  a_model.fill_gradients(1.0f);
  EXPECT_FALSE(a.step(20));
  b_model.fill_gradients(4.0f);
  EXPECT_FALSE(b.step(10));

  bool b_stepped = false;
  const auto started = std::chrono::steady_clock::now();
  std::thread b_thread([&] { b_stepped = b.finish_epoch(10s, 300ms); });
  EXPECT_TRUE(a.finish_epoch(10s, 300ms));
  b_thread.join();
  EXPECT_GE(std::chrono::steady_clock::now() - started, 300ms);
  EXPECT_TRUE(b_stepped);
  EXPECT_EQ(a.epoch(), 1u);
  EXPECT_EQ(b.epoch(), 1u);
  ASSERT_TRUE(a.last_round().averaged);
  EXPECT_EQ(a.last_round().gradients.group_size, 2u);
  EXPECT_EQ(a.last_round().local_samples, 20u);
  // The mean gradient of the 30 samples: (20·1 + 10·4) / 30 = 2.
  for (std::size_t i = 0; i < kDim; ++i) {
    EXPECT_NEAR(a_model.params[i], 0.5f - 0.1f * 2.0f, 1e-5f) << i;
    EXPECT_EQ(a_model.params[i], b_model.params[i]) << i;
  }
  EXPECT_EQ(a.local_samples(), 0u);
}

// Nothing accumulated since the last boundary: nothing to wait for.
TEST(FinishEpoch, NothingAccumulatedReturnsAtOnce) {
  auto hub = std::make_shared<FakeHub>();
  hub->target = 40;
  Buffers model;
  CollaborativeOptimizer opt(std::make_shared<FakeSwarm>(hub, "p"), sgd_options(hub->target),
                             model.params, model.grads);
  const auto started = std::chrono::steady_clock::now();
  EXPECT_FALSE(opt.finish_epoch(10s, 5s));
  EXPECT_LT(std::chrono::steady_clock::now() - started, 1s);
  EXPECT_EQ(opt.epoch(), 0u);
}

// Another peer is still training towards a target it will not reach in time:
// the leaving peer gives up at its timeout, steps nothing, and keeps its state.
TEST(FinishEpoch, GivesUpAtTheTimeoutWhileOthersStillTrain) {
  auto hub = std::make_shared<FakeHub>();
  hub->target = 100000;
  hub->clock = [] { return 1000.0; };  // frozen: estimates are exactly the samples reported
  auto opts = sgd_options(hub->target);
  opts.clock = hub->clock;
  Buffers leaving_model, busy_model;
  CollaborativeOptimizer leaving(std::make_shared<FakeSwarm>(hub, "leaving"), opts,
                                 leaving_model.params, leaving_model.grads);
  CollaborativeOptimizer busy(std::make_shared<FakeSwarm>(hub, "busy"), opts, busy_model.params,
                              busy_model.grads);
  leaving_model.fill_gradients(1.0f);
  EXPECT_FALSE(leaving.step(10));
  std::atomic<bool> stop = false;
  std::thread trainer([&] {
    while (!stop) {
      busy_model.fill_gradients(1.0f);
      busy.step(1);
      std::this_thread::sleep_for(20ms);
    }
  });
  const auto started = std::chrono::steady_clock::now();
  EXPECT_FALSE(leaving.finish_epoch(700ms, 400ms));
  const auto waited = std::chrono::steady_clock::now() - started;
  stop = true;
  trainer.join();
  EXPECT_GE(waited, 700ms);
  EXPECT_LT(waited, 5s);
  EXPECT_EQ(leaving.epoch(), 0u);
  EXPECT_EQ(leaving.local_samples(), 10u);
  EXPECT_EQ(leaving_model.params, std::vector<float>(kDim, 0.5f));
}

// A member of a group matched ahead waits for its leader, which releases the
// group at its next step(): the round's deadline is the adaptive one plus one
// batch of compute (10 samples at 10 samples/s here), capped by the timeout.
TEST(RoundDeadline, AllowsOneBatchOfComputeForTheLeader) {
  auto hub = std::make_shared<FakeHub>();
  hub->target = 20;
  hub->group_wait = 10ms;
  double t = 1000.0;
  hub->clock = [&t] { return t; };
  auto opts = sgd_options(hub->target);
  opts.clock = hub->clock;
  Buffers model;
  CollaborativeOptimizer opt(std::make_shared<FakeSwarm>(hub, "p"), opts, model.params,
                             model.grads);
  model.fill_gradients(1.0f);
  t += 1.0;
  EXPECT_FALSE(opt.step(10));
  t += 1.0;
  EXPECT_TRUE(opt.step(10));
  EXPECT_NEAR(opt.last_round().deadline_seconds, 2.0 + 1.0, 1e-9);

  auto slow_hub = std::make_shared<FakeHub>();
  slow_hub->target = 20;
  slow_hub->group_wait = 10ms;
  slow_hub->clock = hub->clock;
  Buffers slow_model;
  CollaborativeOptimizer slow_opt(std::make_shared<FakeSwarm>(slow_hub, "q"), opts,
                                  slow_model.params, slow_model.grads);
  t += 100.0;  // 10 samples in 100 s: a 100 s batch, capped at the 2 s timeout
  EXPECT_FALSE(slow_opt.step(10));
  t += 100.0;
  EXPECT_TRUE(slow_opt.step(10));
  EXPECT_NEAR(slow_opt.last_round().deadline_seconds, 2.0 + 2.0, 1e-9);
}
