// StepRule: the configured optimizer and an embedder's external one behind the
// collaborative optimizer — the same steps, statistics that travel with the
// state, and overlap turned off for a rule that cannot be copied.
#include "core/error.hpp"
#include "optimizer/collaborative_optimizer.hpp"
#include "optimizer/step_rule.hpp"
#include "tests/optimizer/fake_swarm.hpp"

#include <gtest/gtest.h>

#include <vector>

using namespace apiary::optimizer;
using apiary::optimizer::testing::FakeHub;
using apiary::optimizer::testing::FakeSwarm;

namespace {

constexpr std::size_t kDim = 6;

CollaborativeOptions sgd_options(std::uint64_t target) {
  CollaborativeOptions o;
  o.config.run = "rule";
  o.config.target_batch_size = target;
  o.config.optimizer.name = OptimizerName::sgd;
  o.config.optimizer.lr = 0.5;
  o.config.optimizer.momentum = 0.0;
  o.config.averaging.averaging_timeout = 2.0;
  return o;
}

// Plain SGD with lr 0.5 as an embedder would write it, plus one statistic
// (the last gradient applied) so that state handling can be checked.
struct EmbedderSgd {
  std::vector<float> last_gradient = std::vector<float>(kDim, 0.0f);
  int steps = 0, replaced = 0;
  std::vector<std::uint64_t> epochs;
  std::shared_ptr<StepRule> rule() {
    ExternalStep external;
    external.step = [this](std::span<float> params, std::span<const float> grads,
                           std::uint64_t epoch) {
      for (std::size_t i = 0; i < params.size(); ++i) params[i] -= 0.5f * grads[i];
      std::copy(grads.begin(), grads.end(), last_gradient.begin());
      ++steps;
      epochs.push_back(epoch);
    };
    external.state = {std::span<float>(last_gradient)};
    external.state_replaced = [this] { ++replaced; };
    return std::make_shared<ExternalStepRule>(std::move(external));
  }
};

void gradient_of(std::span<const float> params, std::span<float> grads) {
  for (std::size_t i = 0; i < params.size(); ++i) grads[i] = params[i] - static_cast<float>(i);
}

}  // namespace

TEST(StepRule, AnExternalRuleTakesTheSameStepsAsTheConfiguredOne) {
  // Each alone on its own hub: a group of one averages trivially.
  auto hub1 = std::make_shared<FakeHub>(), hub2 = std::make_shared<FakeHub>();
  hub1->target = hub2->target = 8;
  std::vector<float> p1(kDim, 3.0f), g1(kDim), p2(kDim, 3.0f), g2(kDim);
  CollaborativeOptimizer configured(std::make_shared<FakeSwarm>(hub1, "a"), sgd_options(8), p1, g1);
  EmbedderSgd embedder;
  auto options = sgd_options(8);
  options.step_rule = embedder.rule();
  CollaborativeOptimizer external(std::make_shared<FakeSwarm>(hub2, "b"), options, p2, g2);
  for (int call = 0; call < 12; ++call) {
    gradient_of(p1, g1);
    gradient_of(p2, g2);
    EXPECT_EQ(configured.step(4), external.step(4)) << "call " << call;
  }
  EXPECT_EQ(external.epoch(), 6u);
  EXPECT_EQ(embedder.steps, 6);
  EXPECT_EQ(embedder.epochs, (std::vector<std::uint64_t>{0, 1, 2, 3, 4, 5}));
  EXPECT_EQ(external.step_rule().steps_taken(), 6u);
  for (std::size_t i = 0; i < kDim; ++i) EXPECT_FLOAT_EQ(p1[i], p2[i]) << i;
}

TEST(StepRule, ExternalStatisticsTravelWithTheStateAndAreReplacedOnRestore) {
  auto hub = std::make_shared<FakeHub>();
  hub->target = 4;
  std::vector<float> p(kDim, 1.0f), g(kDim);
  EmbedderSgd embedder;
  auto options = sgd_options(4);
  options.step_rule = embedder.rule();
  CollaborativeOptimizer optimizer(std::make_shared<FakeSwarm>(hub, "a"), options, p, g);
  gradient_of(p, g);
  ASSERT_TRUE(optimizer.step(4));
  StateSnapshot state = optimizer.snapshot();
  ASSERT_EQ(state.tensors.size(), 2u);  // parameters, then the embedder's statistic
  EXPECT_EQ(state.tensors[1], embedder.last_gradient);
  EXPECT_EQ(state.optimizer_steps, 1u);

  state.tensors[1].assign(kDim, 7.0f);
  state.optimizer_steps = 42;
  const int replaced_before = embedder.replaced;
  optimizer.restore(state);
  EXPECT_EQ(embedder.last_gradient, std::vector<float>(kDim, 7.0f));
  EXPECT_EQ(optimizer.step_rule().steps_taken(), 42u);
  EXPECT_GT(embedder.replaced, replaced_before);  // told to mirror the new state

  state.tensors[1].resize(kDim + 1);  // someone else's optimizer
  EXPECT_THROW(optimizer.restore(state), apiary::Error);
}

TEST(StepRule, OverlapIsTurnedOffForARuleThatCannotBeCopied) {
  auto hub = std::make_shared<FakeHub>();
  hub->target = 4;
  std::vector<float> p(kDim, 1.0f), g(kDim);
  EmbedderSgd embedder;
  auto options = sgd_options(4);
  options.config.averaging.overlap = true;
  options.step_rule = embedder.rule();
  CollaborativeOptimizer optimizer(std::make_shared<FakeSwarm>(hub, "a"), options, p, g);
  gradient_of(p, g);
  ASSERT_TRUE(optimizer.step(4));
  EXPECT_FALSE(optimizer.last_round().overlapped);
  EXPECT_TRUE(optimizer.last_round().applied);  // blocking: the step is taken at once
  EXPECT_EQ(embedder.steps, 1);
}

TEST(StepRule, TheConfiguredRuleClonesItsStatistics) {
  OptimizerConfig adam;
  ConfiguredStepRule rule(adam, 4);
  std::vector<float> params(4, 1.0f), grads(4, 0.5f);
  rule.step(params, grads, 0);
  auto copy = rule.clone();
  ASSERT_NE(copy, nullptr);
  EXPECT_EQ(copy->steps_taken(), 1u);
  ASSERT_EQ(copy->state_buffers().size(), 2u);
  copy->state_buffers()[0][0] = 99.0f;  // its own buffers
  EXPECT_NE(rule.state_buffers()[0][0], 99.0f);
  rule.step(params, grads, 1);
  ASSERT_TRUE(rule.copy_into(*copy));  // a copy again, in its own buffers
  EXPECT_EQ(copy->steps_taken(), 2u);
  EXPECT_EQ(copy->state_buffers()[0][0], rule.state_buffers()[0][0]);
  EXPECT_NE(copy->state_buffers()[0].data(), rule.state_buffers()[0].data());
  EmbedderSgd embedder;
  EXPECT_FALSE(rule.copy_into(*embedder.rule()));  // another kind of rule
}
