// Finite-difference gradient checks for every layer, the loss and the MLP.
#include "nn/layers.hpp"
#include "nn/local_optimizer.hpp"
#include "nn/loss.hpp"
#include "nn/mlp.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

using namespace apiary::nn;

namespace {
Tensor random_tensor(Shape shape, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> v(element_count(shape));
  for (auto& x : v) x = dist(rng);
  return Tensor::from_vector(v, std::move(shape));
}

Tensor labels_of(std::vector<std::int32_t> labels) {
  Tensor t = Tensor::empty({labels.size()}, DType::i32);
  std::copy(labels.begin(), labels.end(), t.span<std::int32_t>().begin());
  return t;
}

// Scalar objective Σ w ⊙ layer(x) so every output element contributes.
double objective(Layer& layer, const Tensor& x, const Tensor& w) {
  Tensor y = layer.forward(x);
  double s = 0.0;
  auto ys = y.span<const float>();
  auto ws = w.span<const float>();
  for (std::size_t i = 0; i < ys.size(); ++i) s += double(ys[i]) * ws[i];
  return s;
}

// Checks d objective / d values[i] (values is a view into x or the parameters).
void check_gradient(Layer& layer, const Tensor& x, const Tensor& w, std::span<float> values,
                    std::span<const float> analytic, double tolerance, const char* what) {
  const float h = 1e-2f;
  for (std::size_t i = 0; i < values.size(); ++i) {
    float original = values[i];
    values[i] = original + h;
    double plus = objective(layer, x, w);
    values[i] = original - h;
    double minus = objective(layer, x, w);
    values[i] = original;
    double numeric = (plus - minus) / (2.0 * h);
    ASSERT_NEAR(analytic[i], numeric, tolerance * (1.0 + std::fabs(numeric))) << what << " " << i;
  }
}
}  // namespace

TEST(Layers, LinearGradients) {
  ParameterRegistry registry;
  Linear linear(registry, "fc", 5, 3);
  registry.finalize();
  std::mt19937_64 rng(1);
  linear.initialize(Init::xavier, rng);
  registry.parameter(registry.find("fc.bias")).copy_from(random_tensor({3}, 9));
  Tensor x = random_tensor({4, 5}, 2), w = random_tensor({4, 3}, 3);
  registry.zero_gradients();
  linear.forward(x);
  Tensor dx = linear.backward(w).to(Device::cpu);
  std::vector<float> grads(registry.flat_gradients().begin(), registry.flat_gradients().end());
  check_gradient(linear, x, w, x.span<float>(), dx.span<const float>(), 2e-3, "input");
  check_gradient(linear, x, w, registry.flat_parameters(), grads, 2e-3, "params");
  // Gradients accumulate: a second backward doubles them.
  linear.forward(x);
  linear.backward(w);
  EXPECT_NEAR(registry.flat_gradients()[0], 2 * grads[0], 1e-5);
}

TEST(Layers, ActivationGradients) {
  Tensor x = random_tensor({3, 7}, 4), w = random_tensor({3, 7}, 5);
  for (auto& v : x.span<float>()) v = std::fabs(v) < 0.05f ? 0.3f : v;  // off ReLU's kink
  ReLU relu;
  relu.forward(x);
  Tensor relu_dx = relu.backward(w).to(Device::cpu);
  check_gradient(relu, x, w, x.span<float>(), relu_dx.span<const float>(), 2e-3, "relu");
  GELU gelu;
  gelu.forward(x);
  Tensor gelu_dx = gelu.backward(w).to(Device::cpu);
  check_gradient(gelu, x, w, x.span<float>(), gelu_dx.span<const float>(), 2e-3, "gelu");
  ReLU fresh;
  EXPECT_THROW(fresh.backward(w), std::logic_error);
}

TEST(Layers, LossGradient) {
  Tensor logits = random_tensor({4, 6}, 6);
  Tensor labels = labels_of({0, 5, 2, 2});
  SoftmaxCrossEntropy loss;
  loss.forward_backward(logits, labels);
  Tensor grad = loss.grad().to(Device::cpu);
  auto values = logits.span<float>();
  for (std::size_t i = 0; i < values.size(); ++i) {
    float original = values[i];
    values[i] = original + 1e-2f;
    double plus = SoftmaxCrossEntropy::loss(logits, labels);
    values[i] = original - 1e-2f;
    double minus = SoftmaxCrossEntropy::loss(logits, labels);
    values[i] = original;
    ASSERT_NEAR(grad.span<float>()[i], (plus - minus) / 2e-2, 1e-3) << i;
  }
  EXPECT_THROW(loss.forward_backward(logits, labels_of({0, 1})), std::invalid_argument);
  EXPECT_THROW(loss.forward_backward(logits, labels_of({0, 1, 2, 6})), std::invalid_argument);
}

TEST(Mlp, WholeModelGradientMatchesFiniteDifferences) {
  for (Activation activation : {Activation::gelu, Activation::relu}) {
    Mlp model({.layer_sizes = {6, 8, 5, 3}, .activation = activation, .seed = 3});
    Tensor x = random_tensor({5, 6}, 7);
    Tensor labels = labels_of({0, 1, 2, 1, 0});
    model.forward_backward(x, labels);
    auto& registry = model.parameters();
    std::vector<float> grads(registry.flat_gradients().begin(), registry.flat_gradients().end());
    auto params = registry.flat_parameters();
    int checked = 0;
    // ReLU: a small step so no hidden unit crosses its kink; GELU is smooth.
    const float h = activation == Activation::gelu ? 1e-2f : 1e-3f;
    for (std::size_t i = 0; i < params.size(); i += 3) {
      float original = params[i];
      params[i] = original + h;
      double plus = SoftmaxCrossEntropy::loss(model.forward(x), labels);
      params[i] = original - h;
      double minus = SoftmaxCrossEntropy::loss(model.forward(x), labels);
      params[i] = original;
      ASSERT_NEAR(grads[i], (plus - minus) / (2.0 * h), 2e-3) << i;
      ++checked;
    }
    EXPECT_GT(checked, 30);
  }
}

TEST(Mlp, SeededInitializationIsReproducible) {
  Mlp a({.layer_sizes = {10, 4, 2}, .seed = 42});
  Mlp b({.layer_sizes = {10, 4, 2}, .seed = 42});
  Mlp c({.layer_sizes = {10, 4, 2}, .seed = 43});
  auto pa = a.parameters().flat_parameters(), pb = b.parameters().flat_parameters();
  auto pc = c.parameters().flat_parameters();
  EXPECT_TRUE(std::equal(pa.begin(), pa.end(), pb.begin()));
  EXPECT_FALSE(std::equal(pa.begin(), pa.end(), pc.begin()));
  EXPECT_THROW(Mlp({.layer_sizes = {10}}), std::invalid_argument);
}

TEST(LocalOptimizer, EveryKindReducesTheLossOnAFixedBatch) {
  for (const char* name : {"sgd", "adam", "lamb"}) {
    Mlp model({.layer_sizes = {6, 16, 3}, .seed = 1});
    LocalOptimizerConfig config;
    config.kind = parse_optimizer_kind(name);
    config.set_learning_rate(config.kind == OptimizerKind::sgd ? 0.1f : 0.01f);
    config.clip_norm = 10.0f;
    LocalOptimizer optimizer(model.parameters(), config);
    Tensor x = random_tensor({8, 6}, 2);
    Tensor labels = labels_of({0, 1, 2, 0, 1, 2, 0, 1});
    float first = model.forward_backward(x, labels);
    float last = first;
    for (int i = 0; i < 50; ++i) {
      last = model.forward_backward(x, labels);
      optimizer.step();
    }
    EXPECT_LT(last, first * 0.5f) << name;
    EXPECT_EQ(optimizer.steps_taken(), 50u);
  }
  EXPECT_THROW(parse_optimizer_kind("rmsprop"), std::invalid_argument);
}
