#include "kernels/activation.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

using namespace apiary::kernels;

namespace {
std::vector<float> random_values(std::size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-3.0f, 3.0f);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

// Central difference of Σ w·f(x) with respect to x[i].
template <typename Forward>
double numeric_grad(std::vector<float> x, std::size_t i, const std::vector<float>& w,
                    Forward forward) {
  const float h = 1e-2f;
  double plus = 0.0, minus = 0.0;
  std::vector<float> y(x.size());
  float original = x[i];
  x[i] = original + h;
  forward(x, y);
  for (std::size_t j = 0; j < y.size(); ++j) plus += double(w[j]) * y[j];
  x[i] = original - h;
  forward(x, y);
  for (std::size_t j = 0; j < y.size(); ++j) minus += double(w[j]) * y[j];
  return (plus - minus) / (2.0 * h);
}
}  // namespace

TEST(Activation, ReluForwardBackward) {
  std::vector<float> x = {-1.0f, 0.0f, 2.0f}, y(3), dx(3), dy = {5.0f, 5.0f, 5.0f};
  relu_forward(x, y);
  EXPECT_EQ(y, (std::vector<float>{0.0f, 0.0f, 2.0f}));
  relu_backward(x, dy, dx);
  EXPECT_EQ(dx, (std::vector<float>{0.0f, 0.0f, 5.0f}));
}

TEST(Activation, GeluValuesAndGradientCheck) {
  std::vector<float> x = {0.0f, 1.0f, -1.0f}, y(3);
  gelu_forward(x, y);
  EXPECT_FLOAT_EQ(y[0], 0.0f);
  EXPECT_NEAR(y[1], 0.8411920f, 1e-6);  // tanh approximation at 1
  EXPECT_NEAR(y[2], -0.1588080f, 1e-6);
  auto input = random_values(50, 2);
  auto w = random_values(50, 3);
  std::vector<float> dx(50);
  gelu_backward(input, w, dx);
  auto forward = [](const std::vector<float>& in, std::vector<float>& out) {
    gelu_forward(in, out);
  };
  for (std::size_t i = 0; i < input.size(); ++i) {
    EXPECT_NEAR(dx[i], numeric_grad(input, i, w, forward), 2e-3) << i;
  }
}

TEST(Activation, ReluGradientCheckAwayFromKink) {
  auto input = random_values(40, 4);
  for (auto& v : input) v = std::fabs(v) < 0.05f ? 0.5f : v;  // keep off the kink
  auto w = random_values(40, 5);
  std::vector<float> dx(40);
  relu_backward(input, w, dx);
  auto forward = [](const std::vector<float>& in, std::vector<float>& out) {
    relu_forward(in, out);
  };
  for (std::size_t i = 0; i < input.size(); ++i) {
    EXPECT_NEAR(dx[i], numeric_grad(input, i, w, forward), 1e-3) << i;
  }
}

TEST(Loss, SoftmaxCrossEntropyValueAndGradient) {
  const std::size_t batch = 4, classes = 5;
  auto logits = random_values(batch * classes, 6);
  std::vector<std::int32_t> labels = {0, 3, 4, 1};
  std::vector<float> grad(logits.size());
  float loss = softmax_cross_entropy(logits, labels, batch, classes, grad);
  double expected = 0.0;
  for (std::size_t r = 0; r < batch; ++r) {
    double denom = 0.0;
    for (std::size_t j = 0; j < classes; ++j) denom += std::exp(double(logits[r * classes + j]));
    expected += std::log(denom) - logits[r * classes + labels[r]];
  }
  EXPECT_NEAR(loss, expected / batch, 1e-5);
  for (std::size_t i = 0; i < logits.size(); ++i) {
    auto shifted = logits;
    const float h = 1e-2f;
    shifted[i] += h;
    float plus = softmax_cross_entropy(shifted, labels, batch, classes, {});
    shifted[i] -= 2 * h;
    float minus = softmax_cross_entropy(shifted, labels, batch, classes, {});
    EXPECT_NEAR(grad[i], (plus - minus) / (2 * h), 1e-3) << i;
  }
}

TEST(Loss, StableForHugeLogitsAndChecksLabels) {
  std::vector<float> logits = {1000.0f, 0.0f, -1000.0f};
  std::vector<std::int32_t> labels = {0};
  EXPECT_NEAR(softmax_cross_entropy(logits, labels, 1, 3, {}), 0.0f, 1e-6);
  labels[0] = 2;
  EXPECT_NEAR(softmax_cross_entropy(logits, labels, 1, 3, {}), 2000.0f, 1e-2);
  labels[0] = 3;
  EXPECT_THROW(softmax_cross_entropy(logits, labels, 1, 3, {}), std::invalid_argument);
  labels[0] = -1;
  EXPECT_THROW(softmax_cross_entropy(logits, labels, 1, 3, {}), std::invalid_argument);
}
