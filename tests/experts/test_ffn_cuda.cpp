// The FFN expert on CUDA against the same expert on the CPU. Where no CUDA
// device exists the comparisons are skipped with the driver's reason, and
// asking for one fails with that reason.
#include "core/error.hpp"
#include "experts/expert_backend.hpp"
#include "experts/ffn_expert.hpp"
#include "kernels/device.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

using namespace apiary;
using namespace apiary::experts;
using kernels::Device;

namespace {

#define REQUIRE_CUDA()                                                      \
  do {                                                                      \
    if (!kernels::cuda_available()) GTEST_SKIP() << kernels::cuda_status(); \
  } while (false)

void expect_close(std::span<const float> cuda, std::span<const float> cpu, float tolerance,
                  const char* what) {
  ASSERT_EQ(cuda.size(), cpu.size()) << what;
  for (std::size_t i = 0; i < cpu.size(); ++i) {
    ASSERT_NEAR(cuda[i], cpu[i], tolerance * (1.0f + std::fabs(cpu[i])))
        << what << " [" << i << "]";
  }
}

const FfnConfig kConfig{48, 96, 40, 7};

BackendOptions adam_options() {
  BackendOptions options;
  options.optimizer.kind = ExpertOptimizerConfig::Kind::adam;
  options.optimizer.adam.lr = 1e-2f;
  options.optimizer.clip_grad_norm = 5.0f;
  return options;
}

}  // namespace

TEST(FfnCuda, WithoutADeviceConstructionSaysWhy) {
  if (kernels::cuda_available()) GTEST_SKIP() << "a CUDA device exists: " << kernels::cuda_status();
  try {
    FfnExpert expert(kConfig, Device::cuda);
    FAIL() << "a CUDA expert was built without a device";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(kernels::cuda_status()), std::string::npos) << e.what();
  }
}

TEST(FfnCuda, ForwardAndBackwardMatchTheCpu) {
  REQUIRE_CUDA();
  FfnExpert cpu(kConfig), cuda(kConfig, Device::cuda);
  EXPECT_EQ(cuda.device(), Device::cuda);
  for (std::size_t rows : {1u, 33u, 7u}) {  // varying batch sizes reuse the scratch buffers
    auto x = HostTensor::normal({rows, kConfig.in_features}, rows);
    auto dy = HostTensor::normal({rows, kConfig.out_features}, rows + 100);
    auto y_cpu = cpu.forward(x), y_cuda = cuda.forward(x);
    EXPECT_EQ(y_cuda.shape, y_cpu.shape);
    expect_close(y_cuda.values, y_cpu.values, 1e-4f, "forward");
    auto dx_cpu = cpu.backward(x, dy), dx_cuda = cuda.backward(x, dy);
    expect_close(dx_cuda.values, dx_cpu.values, 1e-4f, "grad_input");
    std::vector<float> grads(cuda.gradients().size());
    kernels::copy_bytes(grads.data(), Device::cpu, cuda.gradients().data(), Device::cuda,
                        grads.size() * sizeof(float));
    expect_close(grads, cpu.gradients(), 1e-3f, "parameter gradients");
  }
}

TEST(FfnCuda, BackendStepsAndCheckpointStateMatchTheCpu) {
  REQUIRE_CUDA();
  ExpertBackend cpu("ffn.0.0", std::make_unique<FfnExpert>(kConfig), adam_options());
  ExpertBackend cuda("ffn.0.0", std::make_unique<FfnExpert>(kConfig, Device::cuda), adam_options());
  for (std::uint64_t step = 0; step < 5; ++step) {
    auto x = HostTensor::normal({16, kConfig.in_features}, step);
    auto dy = HostTensor::normal({16, kConfig.out_features}, step + 50);
    expect_close(cuda.backward(x, dy).values, cpu.backward(x, dy).values, 1e-3f, "grad_input");
  }
  const auto cpu_state = cpu.state(), cuda_state = cuda.state();
  EXPECT_EQ(cuda_state.update_count, 5u);
  expect_close(cuda_state.parameters, cpu_state.parameters, 1e-3f, "parameters after 5 steps");
  expect_close(cuda_state.optimizer_state, cpu_state.optimizer_state, 1e-3f, "adam state");
  // A CPU checkpoint loads onto a CUDA expert (and back) and computes the same.
  ExpertBackend restored("ffn.0.0",
                         std::make_unique<FfnExpert>(FfnConfig{48, 96, 40, 99}, Device::cuda),
                         adam_options());
  restored.load_state(cpu_state);
  auto x = HostTensor::normal({9, kConfig.in_features}, 1234);
  expect_close(restored.forward(x).values, cpu.forward(x).values, 1e-4f, "restored forward");
}
