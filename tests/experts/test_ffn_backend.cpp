#include "core/error.hpp"
#include "experts/checkpoint.hpp"
#include "experts/expert_backend.hpp"
#include "experts/ffn_expert.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>

using namespace apiary;
using namespace apiary::experts;

namespace {

double dot(const HostTensor& a, const HostTensor& b) {
  double s = 0.0;
  for (std::size_t i = 0; i < a.values.size(); ++i) s += double(a.values[i]) * b.values[i];
  return s;
}

std::unique_ptr<FfnExpert> small_ffn(std::uint64_t seed = 1) {
  return std::make_unique<FfnExpert>(FfnConfig{5, 7, 3, seed});
}

}  // namespace

TEST(FfnExpert, GradientsMatchFiniteDifferences) {
  auto ffn = small_ffn();
  auto x = HostTensor::normal({4, 5}, 2);
  auto r = HostTensor::normal({4, 3}, 3);  // loss = Σ y ⊙ r
  auto dx = ffn->backward(x, r);
  std::vector<float> grads(ffn->gradients().begin(), ffn->gradients().end());
  const float eps = 1e-2f;
  for (std::size_t i = 0; i < x.values.size(); ++i) {
    auto xp = x, xm = x;
    xp.values[i] += eps;
    xm.values[i] -= eps;
    double numeric = (dot(ffn->forward(xp), r) - dot(ffn->forward(xm), r)) / (2 * eps);
    EXPECT_NEAR(dx.values[i], numeric, 2e-3 + 1e-2 * std::abs(numeric)) << "input " << i;
  }
  auto params = ffn->parameters();
  for (std::size_t i = 0; i < params.size(); i += 3) {
    const float saved = params[i];
    params[i] = saved + eps;
    double up = dot(ffn->forward(x), r);
    params[i] = saved - eps;
    double down = dot(ffn->forward(x), r);
    params[i] = saved;
    double numeric = (up - down) / (2 * eps);
    EXPECT_NEAR(grads[i], numeric, 2e-3 + 1e-2 * std::abs(numeric)) << "param " << i;
  }
}

TEST(ExpertBackend, RefusesWrongShapesNamingBoth) {
  ExpertBackend backend("ffn.0.0", small_ffn(), {.max_batch_size = 8});
  try {
    backend.forward(HostTensor::zeros({2, 4}));
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::invalid_argument);
    std::string msg = e.what();
    EXPECT_NE(msg.find("[*, 5]"), std::string::npos) << msg;
    EXPECT_NE(msg.find("[2, 4]"), std::string::npos) << msg;
  }
  EXPECT_THROW(backend.forward(HostTensor::zeros({9, 5})), Error);  // above max_batch_size
  EXPECT_THROW(backend.backward(HostTensor::zeros({2, 5}), HostTensor::zeros({3, 3})), Error);
  EXPECT_THROW(backend.backward(HostTensor::zeros({2, 5}), HostTensor::zeros({2, 4})), Error);
  HostTensor broken;
  broken.shape = {2, 5};
  broken.values.resize(3);  // buffer shorter than its shape
  EXPECT_THROW(backend.forward(broken), Error);
  EXPECT_EQ(backend.forward(HostTensor::zeros({2, 5})).shape, (std::vector<std::size_t>{2, 3}));
}

TEST(ExpertBackend, BackwardTakesAnOptimizerStepThatLowersTheLoss) {
  BackendOptions options;
  options.optimizer.kind = ExpertOptimizerConfig::Kind::sgd;
  options.optimizer.sgd.lr = 0.05f;
  ExpertBackend backend("ffn.1.2", small_ffn(), options);
  auto x = HostTensor::normal({16, 5}, 4);
  auto target = HostTensor::normal({16, 3}, 5, 0.5f);
  auto loss = [&] {
    auto y = backend.forward(x);
    double l = 0.0;
    for (std::size_t i = 0; i < y.values.size(); ++i) {
      l += 0.5 * std::pow(y.values[i] - target.values[i], 2);
    }
    return l;
  };
  const double before = loss();
  for (int step = 0; step < 20; ++step) {
    auto y = backend.forward(x);
    for (std::size_t i = 0; i < y.values.size(); ++i) y.values[i] -= target.values[i];
    backend.backward(x, y);
  }
  EXPECT_EQ(backend.update_count(), 20u);
  EXPECT_LT(loss(), 0.8 * before);
}

TEST(ExpertBackend, NoOptimizerLeavesWeightsAlone) {
  BackendOptions options;
  options.optimizer.kind = ExpertOptimizerConfig::Kind::none;
  ExpertBackend backend("ffn.0.1", small_ffn(), options);
  auto before = backend.state().parameters;
  backend.backward(HostTensor::normal({3, 5}, 6), HostTensor::normal({3, 3}, 7));
  EXPECT_EQ(backend.state().parameters, before);
}

TEST(ExpertCheckpoint, RoundTripsAndDetectsCorruption) {
  auto dir = std::filesystem::path(::testing::TempDir()) / "apiary-expert-ckpt";
  std::filesystem::remove_all(dir);
  ExpertBackend a("ffn.2.3", small_ffn(11));
  a.backward(HostTensor::normal({4, 5}, 8), HostTensor::normal({4, 3}, 9));  // adam state non-zero
  save_checkpoint(dir, a);
  ExpertBackend b("ffn.2.3", small_ffn(12));
  ASSERT_TRUE(load_checkpoint(dir, b));
  EXPECT_EQ(b.state().parameters, a.state().parameters);
  EXPECT_EQ(b.state().optimizer_state, a.state().optimizer_state);
  EXPECT_EQ(b.update_count(), 1u);

  ExpertBackend other("ffn.2.4", small_ffn());
  EXPECT_FALSE(load_checkpoint(dir, other));  // no file for that uid

  // Flip one byte: the hash check refuses the file and the backend is untouched.
  auto path = checkpoint_path(dir, "ffn.2.3");
  {
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(40);
    char c = 0;
    f.read(&c, 1);
    f.seekp(40);
    c ^= 0x5a;
    f.write(&c, 1);
  }
  ExpertBackend c("ffn.2.3", small_ffn(13));
  auto fresh = c.state().parameters;
  try {
    load_checkpoint(dir, c);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::bad_message);
  }
  EXPECT_EQ(c.state().parameters, fresh);
  // No temporary files are left behind.
  std::size_t files = 0;
  for (auto& entry : std::filesystem::directory_iterator(dir)) {
    (void)entry;
    ++files;
  }
  EXPECT_EQ(files, 1u);
  std::filesystem::remove_all(dir);
}

TEST(ExpertCheckpoint, EmptyStateRoundTrips) {  // fuzz finding: memcpy from a null data()
  const ExpertState empty{5, {}, {}};
  const ExpertState back = decode_expert_state("ffn.0.0", encode_expert_state("ffn.0.0", empty));
  EXPECT_EQ(back.update_count, 5u);
  EXPECT_TRUE(back.parameters.empty());
  EXPECT_TRUE(back.optimizer_state.empty());
}

TEST(ExpertCheckpoint, RefusesACheckpointOfAnotherExpert) {
  ExpertBackend a("ffn.0.0", small_ffn());
  auto bytes = encode_expert_state("ffn.0.0", a.state());
  EXPECT_THROW(decode_expert_state("ffn.0.1", bytes), Error);
  bytes.resize(bytes.size() - 1);
  EXPECT_THROW(decode_expert_state("ffn.0.0", bytes), Error);
}
