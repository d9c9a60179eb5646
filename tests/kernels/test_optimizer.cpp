#include "kernels/optimizer.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

using namespace apiary::kernels;

TEST(Sgd, PlainStepWithWeightDecay) {
  std::vector<float> p = {1.0f, -2.0f}, g = {0.5f, 0.25f}, buf;
  sgd_step(p, g, buf, {.lr = 0.1f, .momentum = 0.0f, .weight_decay = 0.1f});
  // p - lr·(g + wd·p): 1 - 0.1·(0.5 + 0.1) = 0.94; -2 - 0.1·(0.25 - 0.2) = -2.005
  EXPECT_FLOAT_EQ(p[0], 0.94f);
  EXPECT_FLOAT_EQ(p[1], -2.005f);
}

TEST(Sgd, MomentumAndNesterovTwoSteps) {
  std::vector<float> p = {1.0f}, g = {1.0f}, buf = {0.0f};
  SgdConfig c{.lr = 0.1f, .momentum = 0.9f};
  sgd_step(p, g, buf, c);  // buf = 1, p = 0.9
  EXPECT_FLOAT_EQ(buf[0], 1.0f);
  EXPECT_FLOAT_EQ(p[0], 0.9f);
  sgd_step(p, g, buf, c);  // buf = 1.9, p = 0.71
  EXPECT_FLOAT_EQ(buf[0], 1.9f);
  EXPECT_FLOAT_EQ(p[0], 0.71f);

  std::vector<float> q = {1.0f}, nbuf = {0.0f};
  c.nesterov = true;
  sgd_step(q, g, nbuf, c);  // buf = 1, d = 1 + 0.9 = 1.9, q = 0.81
  EXPECT_FLOAT_EQ(q[0], 0.81f);
  sgd_step(q, g, nbuf, c);  // buf = 1.9, d = 1 + 1.71 = 2.71, q = 0.539
  EXPECT_FLOAT_EQ(q[0], 0.539f);
}

TEST(Adam, FirstStepsMatchFormula) {
  std::vector<float> p = {1.0f, 2.0f}, g = {0.5f, -1.0f}, m(2, 0.0f), v(2, 0.0f);
  AdamConfig c{.lr = 0.01f};
  adam_step(p, g, m, v, 1, c);
  // Step 1: m̂ = g, v̂ = g², update = g/(|g| + eps) ≈ sign(g).
  EXPECT_NEAR(p[0], 1.0f - 0.01f, 1e-6);
  EXPECT_NEAR(p[1], 2.0f + 0.01f, 1e-6);
  EXPECT_FLOAT_EQ(m[0], 0.05f);
  EXPECT_NEAR(v[0], 0.00025f, 1e-8);  // (1 − β2) rounds in fp32
  // Step 2 with a different gradient, computed by hand in double.
  std::vector<float> g2 = {0.1f, -1.0f};
  adam_step(p, g2, m, v, 2, c);
  double m2 = 0.9 * 0.05 + 0.1 * 0.1, v2 = 0.999 * 0.00025 + 0.001 * 0.01;
  double mhat = m2 / (1 - 0.81), vhat = v2 / (1 - 0.998001);
  EXPECT_NEAR(p[0], 0.99 - 0.01 * mhat / (std::sqrt(vhat) + 1e-8), 1e-6);
  EXPECT_THROW(adam_step(p, g2, m, v, 0, c), std::invalid_argument);
}

TEST(Adam, L2VersusDecoupledWeightDecay) {
  std::vector<float> g = {0.0f}, p1 = {2.0f}, p2 = {2.0f}, m1 = {0}, v1 = {0}, m2 = {0}, v2 = {0};
  // Zero gradient: L2 decay makes the gradient wd·p so Adam moves p by ~lr;
  // AdamW just scales p by (1 − lr·wd).
  adam_step(p1, g, m1, v1, 1, {.lr = 0.1f, .weight_decay = 0.1f});
  adam_step(p2, g, m2, v2, 1, {.lr = 0.1f, .weight_decay = 0.1f, .decoupled_weight_decay = true});
  EXPECT_NEAR(p1[0], 1.9f, 1e-6);
  EXPECT_FLOAT_EQ(p2[0], 2.0f * (1.0f - 0.01f));
}

TEST(Lamb, TrustRatioPerSlice) {
  // Two tensors; step 1 gives u = sign(g) (+ wd·p); r = ‖p‖/‖u‖.
  std::vector<float> p = {3.0f, 4.0f, 1.0f}, g = {1.0f, 1.0f, -2.0f}, m(3, 0.0f), v(3, 0.0f);
  std::vector<TensorSlice> slices = {{0, 2}, {2, 1}};
  LambConfig c{.lr = 0.1f, .eps = 0.0f};
  lamb_step(p, g, m, v, slices, 1, c);
  // Slice 0: ‖p‖ = 5, u = (1, 1), ‖u‖ = √2 → p -= 0.1·5/√2·1
  const float step0 = 0.1f * 5.0f / std::sqrt(2.0f);
  EXPECT_NEAR(p[0], 3.0f - step0, 1e-5);
  EXPECT_NEAR(p[1], 4.0f - step0, 1e-5);
  // Slice 1: ‖p‖ = 1, u = -1, r = 1 → p = 1.1
  EXPECT_NEAR(p[2], 1.1f, 1e-6);
  std::vector<TensorSlice> bad = {{2, 5}};
  EXPECT_THROW(lamb_step(p, g, m, v, bad, 2, c), std::invalid_argument);
}

TEST(Lamb, ZeroParamsUseTrustOne) {
  std::vector<float> p = {0.0f, 0.0f}, g = {1.0f, -1.0f}, m(2, 0.0f), v(2, 0.0f);
  std::vector<TensorSlice> slices = {{0, 2}};
  lamb_step(p, g, m, v, slices, 1, {.lr = 0.5f, .eps = 0.0f});
  EXPECT_FLOAT_EQ(p[0], -0.5f);
  EXPECT_FLOAT_EQ(p[1], 0.5f);
}

TEST(Clip, GlobalNormAndClipping) {
  std::vector<float> g = {3.0f, 4.0f};
  EXPECT_FLOAT_EQ(global_norm(g), 5.0f);
  EXPECT_FLOAT_EQ(clip_by_global_norm(g, 10.0f), 5.0f);
  EXPECT_EQ(g, (std::vector<float>{3.0f, 4.0f}));  // under the limit: unchanged
  EXPECT_FLOAT_EQ(clip_by_global_norm(g, 1.0f), 5.0f);
  EXPECT_FLOAT_EQ(g[0], 0.6f);
  EXPECT_FLOAT_EQ(g[1], 0.8f);
  EXPECT_NEAR(global_norm(g), 1.0f, 1e-6);
}
