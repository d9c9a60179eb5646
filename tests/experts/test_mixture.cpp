#include "core/error.hpp"
#include "experts/ffn_expert.hpp"
#include "experts/mixture.hpp"
#include "local_grid.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

using namespace apiary;
using namespace apiary::experts;
using apiary::experts::testing::FakeDirectory;

namespace {

constexpr std::size_t kIn = 4, kOut = 3;

double dot(const HostTensor& a, const HostTensor& b) {
  double s = 0.0;
  for (std::size_t i = 0; i < a.values.size(); ++i) s += double(a.values[i]) * b.values[i];
  return s;
}

// Always fails, like a dead server.
class DeadExpert : public ExpertHandle {
 public:
  explicit DeadExpert(std::string uid) : uid_(std::move(uid)) {}
  const std::string& uid() const noexcept override { return uid_; }
  PendingTensor forward(HostTensor, std::shared_ptr<CompletionSignal> signal,
                        Clock::duration) override {
    ++calls;
    if (signal) signal->notify();
    return PendingTensor::failed(std::make_exception_ptr(Error(Errc::unavailable, "dead")));
  }
  PendingTensor backward(HostTensor, HostTensor, std::shared_ptr<CompletionSignal> signal,
                         Clock::duration) override {
    return forward({}, signal, {});
  }
  int calls = 0;

 private:
  std::string uid_;
};

// A 2×3 grid of small FFN experts that do not update themselves (so the
// function being differentiated stays fixed).
struct Swarm {
  FakeDirectory directory;  // before handles: fixed_ffn_grid declares into it
  std::map<std::string, ExpertHandlePtr> handles;
  std::set<std::string> dead;

  Swarm()
      : handles(apiary::experts::testing::fixed_ffn_grid(directory, 2, 3,
                                                         FfnConfig{kIn, 5, kOut, 100})) {}
  ExpertResolver resolver() {
    return [this](const ExpertInfo& info) -> ExpertHandlePtr {
      if (dead.count(info.uid)) return std::make_shared<DeadExpert>(info.uid);
      return handles.at(info.uid);
    };
  }
};

MoeConfig config(GatingMode mode, std::size_t k_best) {
  MoeConfig c;
  c.in_features = kIn;
  c.out_features = kOut;
  c.grid = {2, 3};
  c.mode = mode;
  c.k_best = k_best;
  c.k_min = 1;
  c.seed = 9;
  return c;
}

void gradient_check(MixtureOfExperts& moe, float balance_weight) {
  auto x = HostTensor::normal({5, kIn}, 21);
  auto r = HostTensor::normal({5, kOut}, 22);
  auto loss = [&](const HostTensor& input) {
    auto f = moe.forward(input);
    return dot(f.output, r) + balance_weight * double(f.balancing_loss);
  };
  moe.zero_gate_gradients();
  auto f = moe.forward(x);
  auto dx = moe.backward(f, r, balance_weight);
  std::vector<float> gate_grads(moe.gate_gradients().begin(), moe.gate_gradients().end());
  const float eps = 3e-3f;
  for (std::size_t i = 0; i < x.values.size(); ++i) {
    auto xp = x, xm = x;
    xp.values[i] += eps;
    xm.values[i] -= eps;
    double numeric = (loss(xp) - loss(xm)) / (2 * eps);
    EXPECT_NEAR(dx.values[i], numeric, 3e-3 + 3e-2 * std::abs(numeric)) << "input " << i;
  }
  auto params = moe.gate_parameters();
  double grad_norm = 0.0;
  for (std::size_t i = 0; i < params.size(); ++i) {
    const float saved = params[i];
    params[i] = saved + eps;
    double up = loss(x);
    params[i] = saved - eps;
    double down = loss(x);
    params[i] = saved;
    double numeric = (up - down) / (2 * eps);
    grad_norm += numeric * numeric;
    EXPECT_NEAR(gate_grads[i], numeric, 3e-3 + 3e-2 * std::abs(numeric)) << "gate param " << i;
  }
  EXPECT_GT(grad_norm, 1e-4);  // the gate does get a gradient
}

}  // namespace

TEST(MixtureOfExperts, SoftmaxGradientCheckAllExperts) {
  Swarm swarm;
  MixtureOfExperts moe(config(GatingMode::softmax_top_k, 6), swarm.directory, swarm.resolver());
  gradient_check(moe, 0.0f);
}

TEST(MixtureOfExperts, SoftmaxGradientCheckTopTwo) {
  Swarm swarm;
  MixtureOfExperts moe(config(GatingMode::softmax_top_k, 2), swarm.directory, swarm.resolver());
  gradient_check(moe, 0.0f);
}

TEST(MixtureOfExperts, SwitchGradientCheckWithBalancingLoss) {
  Swarm swarm;
  MixtureOfExperts moe(config(GatingMode::switch_top1, 1), swarm.directory, swarm.resolver());
  auto f = moe.forward(HostTensor::normal({8, kIn}, 5));
  EXPECT_GT(f.balancing_loss, 0.0f);
  for (auto n : f.answered) EXPECT_EQ(n, 1u);
  gradient_check(moe, 0.7f);
}

TEST(MixtureOfExperts, OutputIsTheSoftmaxMixOfTheChosenExperts) {
  Swarm swarm;
  MixtureOfExperts moe(config(GatingMode::softmax_top_k, 6), swarm.directory, swarm.resolver());
  auto x = HostTensor::normal({1, kIn}, 3);
  auto f = moe.forward(x);
  // Recompute by hand from the gate and every expert.
  auto gate = moe.gate_parameters();
  std::vector<double> logits(5, 0.0);
  for (std::size_t g = 0; g < 5; ++g) {
    logits[g] = gate[kIn * 5 + g];
    for (std::size_t i = 0; i < kIn; ++i) logits[g] += x.values[i] * gate[i * 5 + g];
  }
  std::vector<double> expected(kOut, 0.0);
  double norm = 0.0;
  for (std::uint32_t i = 0; i < 2; ++i) {
    for (std::uint32_t j = 0; j < 3; ++j) {
      auto uid = "ffn." + std::to_string(i) + "." + std::to_string(j);
      double w = std::exp(logits[i] + logits[2 + j]);
      norm += w;
      auto y = swarm.handles[uid]->forward(x, nullptr, {}).get();
      for (std::size_t o = 0; o < kOut; ++o) expected[o] += w * y.values[o];
    }
  }
  for (std::size_t o = 0; o < kOut; ++o) EXPECT_NEAR(f.output.values[o], expected[o] / norm, 1e-5);
  EXPECT_EQ(f.answered, std::vector<std::size_t>{6});
}

TEST(MixtureOfExperts, FailedExpertsAreMaskedAndKMinEnforced) {
  Swarm swarm;
  swarm.dead = {"ffn.0.0", "ffn.0.1", "ffn.0.2", "ffn.1.0"};
  auto cfg = config(GatingMode::softmax_top_k, 6);
  cfg.k_min = 2;
  MixtureOfExperts moe(cfg, swarm.directory, swarm.resolver());
  auto x = HostTensor::normal({3, kIn}, 8);
  auto f = moe.forward(x);
  EXPECT_EQ(f.answered, (std::vector<std::size_t>{2, 2, 2}));
  // Gradients still flow, through the gate and the two live experts.
  auto dx = moe.backward(f, HostTensor::normal({3, kOut}, 9));
  double norm = 0.0;
  for (float v : dx.values) norm += v * v;
  EXPECT_GT(norm, 0.0);

  swarm.dead.insert("ffn.1.1");
  MixtureOfExperts strict(cfg, swarm.directory, swarm.resolver());
  try {
    strict.forward(x);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::unavailable);
  }
}

TEST(MixtureOfExperts, RejectsInputsOfTheWrongShape) {
  Swarm swarm;
  MixtureOfExperts moe(config(GatingMode::softmax_top_k, 2), swarm.directory, swarm.resolver());
  EXPECT_THROW(moe.forward(HostTensor::zeros({2, kIn + 1})), Error);
  auto f = moe.forward(HostTensor::zeros({2, kIn}));
  EXPECT_THROW(moe.backward(f, HostTensor::zeros({3, kOut})), Error);
  EXPECT_EQ(moe.forward(HostTensor::zeros({0, kIn})).output.rows(), 0u);
}

TEST(MixtureOfExperts, RowsWhoseExpertsAllFailRetryTheNextBest) {
  Swarm swarm;
  swarm.dead = {"ffn.0.0", "ffn.0.1", "ffn.0.2"};
  std::vector<std::shared_ptr<DeadExpert>> dead_handles;
  auto resolve = [&](const ExpertInfo& info) -> ExpertHandlePtr {
    if (swarm.dead.count(info.uid)) {
      dead_handles.push_back(std::make_shared<DeadExpert>(info.uid));
      return dead_handles.back();
    }
    return swarm.handles.at(info.uid);
  };
  auto dead_calls = [&] {
    int n = 0;
    for (auto& h : dead_handles) n += h->calls;
    return n;
  };
  auto cfg = config(GatingMode::softmax_top_k, 2);
  MixtureOfExperts moe(cfg, swarm.directory, resolve);
  // Make row 0 of the grid (all dead) the clear favourite of every input.
  auto gate = moe.gate_parameters();
  gate[kIn * 5 + 0] = 50.0f;
  auto x = HostTensor::normal({4, kIn}, 12);
  auto f = moe.forward(x);
  EXPECT_EQ(f.answered, (std::vector<std::size_t>(4, 2)));  // both from the retry
  const int first_calls = dead_calls();
  EXPECT_GE(first_calls, 2);  // the dead experts the first round chose
  EXPECT_LE(first_calls, 3);
  // Failed experts are skipped by later searches (for failed_expert_ttl).
  auto again = moe.forward(x);
  EXPECT_EQ(again.answered, (std::vector<std::size_t>(4, 2)));
  EXPECT_EQ(dead_calls(), first_calls);
  auto dx = moe.backward(again, HostTensor::normal({4, kOut}, 13));
  EXPECT_EQ(dx.shape, x.shape);
}
