// MoeMlp: the local parameters (dense layers, gate, head) live in one registry
// and get exact gradients through the remote-expert layer; a batch no expert
// answers is refused with `unavailable`.
#include "core/error.hpp"
#include "experts/ffn_expert.hpp"
#include "experts/moe_mlp.hpp"
#include "local_grid.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

using namespace apiary;
using namespace apiary::experts;
using apiary::experts::testing::FakeDirectory;

namespace {

constexpr std::size_t kInputs = 6, kWidth = 5, kClasses = 3;

// A 2×3 grid of fixed (non-learning) FFN experts, or dead ones.
struct Experts {
  FakeDirectory directory;  // before handles: fixed_ffn_grid declares into it
  std::map<std::string, ExpertHandlePtr> handles;
  bool dead = false;
  Experts()
      : handles(apiary::experts::testing::fixed_ffn_grid(directory, 2, 3,
                                                         FfnConfig{kWidth, 7, kWidth, 40})) {}
  ExpertResolver resolver() {
    return [this](const ExpertInfo& info) -> ExpertHandlePtr {
      if (dead) throw Error(Errc::unavailable, "server gone");
      return handles.at(info.uid);
    };
  }
};

MoeMlpConfig small_config() {
  MoeMlpConfig c;
  c.inputs = kInputs;
  c.hidden = {kWidth};
  c.classes = kClasses;
  c.activation = nn::Activation::gelu;  // smooth, for finite differences
  c.seed = 5;
  c.moe.grid = {2, 3};
  c.moe.k_best = 2;
  c.moe.k_min = 1;
  return c;
}

}  // namespace

namespace {

// Checks every other local parameter's gradient (dense layers, gate, head)
// against central differences of the loss forward_backward() reports.
void check_local_gradients(MoeMlp& model, float balancing_weight) {
  auto& registry = model.parameters();
  // The gate lives inside the registry's flat buffer.
  auto flat = registry.flat_parameters();
  auto gate = model.mixture().gate_parameters();
  EXPECT_GE(gate.data(), flat.data());
  EXPECT_LE(gate.data() + gate.size(), flat.data() + flat.size());

  std::vector<float> images(4 * kInputs);
  std::mt19937_64 rng(3);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  for (auto& v : images) v = dist(rng);
  std::vector<std::int32_t> labels{0, 2, 1, 2};
  auto x = nn::Tensor::view(images.data(), {4, kInputs}, nn::DType::f32, nn::Device::cpu);
  auto y = nn::Tensor::view(labels.data(), {4}, nn::DType::i32, nn::Device::cpu);
  model.forward_backward(x, y);
  std::vector<float> grads(registry.flat_gradients().begin(), registry.flat_gradients().end());
  auto loss = [&] {
    const double ce = nn::SoftmaxCrossEntropy::loss(model.forward(x), y);
    return ce + balancing_weight * model.last_balancing_loss();
  };
  const float eps = 2e-3f;
  std::size_t checked = 0, gate_checked = 0;
  for (std::size_t i = 0; i < flat.size(); i += 2) {
    const float saved = flat[i];
    flat[i] = saved + eps;
    const double up = loss();
    flat[i] = saved - eps;
    const double down = loss();
    flat[i] = saved;
    const double numeric = (up - down) / (2 * eps);
    EXPECT_NEAR(grads[i], numeric, 2e-3 + 2e-2 * std::abs(numeric)) << "parameter " << i;
    ++checked;
    gate_checked += flat.data() + i >= gate.data() && flat.data() + i < gate.data() + gate.size();
  }
  EXPECT_GT(gate_checked, 10u);
  EXPECT_GT(checked, 30u);
}

}  // namespace

TEST(MoeMlp, LocalParametersGetExactGradientsThroughTheExperts) {
  Experts experts;
  MoeMlp model(small_config(), experts.directory, experts.resolver());
  check_local_gradients(model, 0.0f);
}

TEST(MoeMlp, SwitchGatingGradientsIncludeTheBalancingLoss) {
  Experts experts;
  auto config = small_config();
  config.moe.mode = GatingMode::switch_top1;
  config.moe.k_best = 1;
  config.balancing_loss_weight = 0.5f;
  MoeMlp model(config, experts.directory, experts.resolver());
  check_local_gradients(model, 0.5f);
  EXPECT_GT(model.last_balancing_loss(), 0.0f);
}

TEST(MoeMlp, SameSeedSameWeights) {
  Experts experts;
  MoeMlp a(small_config(), experts.directory, experts.resolver());
  MoeMlp b(small_config(), experts.directory, experts.resolver());
  auto pa = a.parameters().flat_parameters(), pb = b.parameters().flat_parameters();
  EXPECT_TRUE(std::equal(pa.begin(), pa.end(), pb.begin(), pb.end()));
}

TEST(MoeMlp, ABatchNoExpertAnswersIsRefusedAsUnavailable) {
  Experts experts;
  experts.dead = true;
  MoeMlp model(small_config(), experts.directory, experts.resolver());
  std::vector<float> images(2 * kInputs, 0.5f);
  std::vector<std::int32_t> labels{0, 1};
  auto x = nn::Tensor::view(images.data(), {2, kInputs}, nn::DType::f32, nn::Device::cpu);
  auto y = nn::Tensor::view(labels.data(), {2}, nn::DType::i32, nn::Device::cpu);
  try {
    model.forward_backward(x, y);
    FAIL() << "no expert answered, yet the step succeeded";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::unavailable);
  }
  EXPECT_NE(model.mixture().last_expert_error().find("server gone"), std::string::npos)
      << model.mixture().last_expert_error();
}
