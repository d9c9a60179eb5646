#include "optimizer/optimizer_schedule.hpp"

#include "core/error.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

using namespace apiary;
using namespace apiary::optimizer;

TEST(LocalOptimizer, ScheduleWarmsUpThenDecays) {
  OptimizerConfig c;
  c.lr = 0.1;
  c.warmup_epochs = 4;
  c.lr_decay_per_epoch = 0.5;
  EXPECT_DOUBLE_EQ(learning_rate(c, 0), 0.025);
  EXPECT_DOUBLE_EQ(learning_rate(c, 3), 0.1);
  EXPECT_DOUBLE_EQ(learning_rate(c, 4), 0.1);
  EXPECT_DOUBLE_EQ(learning_rate(c, 6), 0.025);
}

TEST(LocalOptimizer, SgdMomentumMatchesFormula) {
  OptimizerConfig c;
  c.name = OptimizerName::sgd;
  c.lr = 0.1;
  c.momentum = 0.9;
  LocalOptimizer opt = make_local_optimizer(c, 2);
  std::vector<float> p{1.0f, -1.0f}, g{0.5f, 1.0f};
  step_at_epoch(opt, c, p, g, 0);  // buf = g
  EXPECT_FLOAT_EQ(p[0], 1.0f - 0.1f * 0.5f);
  step_at_epoch(opt, c, p, g, 0);  // buf = 0.9·g + g
  EXPECT_FLOAT_EQ(p[0], 1.0f - 0.1f * 0.5f - 0.1f * 1.9f * 0.5f);
  ASSERT_EQ(opt.state_buffers().size(), 1u);
  EXPECT_FLOAT_EQ(opt.state_buffers()[0][1], 1.9f);
}

TEST(LocalOptimizer, AdamFirstStepMovesByLr) {
  OptimizerConfig c;
  c.name = OptimizerName::adam;
  c.lr = 0.01;
  LocalOptimizer opt = make_local_optimizer(c, 3);
  std::vector<float> p{0, 0, 0}, g{2.0f, -3.0f, 0.0f};
  step_at_epoch(opt, c, p, g, 0);
  // m̂ = g, v̂ = g², so the first step is -lr·sign(g).
  EXPECT_NEAR(p[0], -0.01f, 1e-6);
  EXPECT_NEAR(p[1], 0.01f, 1e-6);
  EXPECT_EQ(p[2], 0.0f);
  EXPECT_EQ(opt.steps_taken(), 1u);
  EXPECT_EQ(opt.state_names(), (std::vector<std::string>{"exp_avg", "exp_avg_sq"}));
}

TEST(LocalOptimizer, RejectsWrongSizes) {
  const OptimizerConfig c;
  LocalOptimizer opt = make_local_optimizer(c, 4);
  std::vector<float> p(4), g(3);
  EXPECT_THROW(step_at_epoch(opt, c, p, g, 0), Error);
}

// The collaborative optimizer's speculative step works on a copy: the copy's
// statistics are its own, and assigning again brings the original's back.
TEST(LocalOptimizer, CopiesOwnTheirStatistics) {
  OptimizerConfig c;
  LocalOptimizer original = make_local_optimizer(c, 2);
  std::vector<float> p{0, 0}, g{1.0f, -1.0f};
  step_at_epoch(original, c, p, g, 0);
  const std::vector<float> first(original.state_buffers()[0].begin(),
                                 original.state_buffers()[0].end());
  LocalOptimizer copy = original;
  step_at_epoch(copy, c, p, g, 1);
  EXPECT_EQ(copy.steps_taken(), 2u);
  EXPECT_EQ(original.steps_taken(), 1u);
  EXPECT_NE(copy.state_buffers()[0][0], first[0]);
  EXPECT_EQ(original.state_buffers()[0][0], first[0]);
  copy = original;
  EXPECT_EQ(copy.state_buffers()[0][0], first[0]);
  EXPECT_EQ(copy.steps_taken(), 1u);
  // SGD without momentum keeps no statistics.
  OptimizerConfig plain;
  plain.name = OptimizerName::sgd;
  plain.momentum = 0.0;
  EXPECT_TRUE(make_local_optimizer(plain, 2).state_buffers().empty());
}
