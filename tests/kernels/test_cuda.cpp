// CUDA kernels against the CPU results. Each test runs only where a CUDA device
// exists and is skipped, saying why, where none does.
#include "kernels/kernels.hpp"

#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <random>
#include <vector>

using namespace apiary::kernels;

namespace {

#define REQUIRE_CUDA()                                                          \
  do {                                                                          \
    if (!cuda_available()) GTEST_SKIP() << "no CUDA device: " << cuda_status(); \
  } while (false)

// A device copy of a host vector.
template <typename T>
class OnDevice {
 public:
  explicit OnDevice(const std::vector<T>& host)
      : size_(host.size()), buffer_(host.size() * sizeof(T), Device::cuda) {
    copy_bytes(buffer_.data(), Device::cuda, host.data(), Device::cpu, host.size() * sizeof(T));
  }
  std::span<T> span() { return {static_cast<T*>(buffer_.data()), size_}; }
  std::vector<T> host() const {
    std::vector<T> out(size_);
    copy_bytes(out.data(), Device::cpu, buffer_.data(), Device::cuda, size_ * sizeof(T));
    return out;
  }

 private:
  std::size_t size_;
  Buffer buffer_;
};

std::vector<float> random_values(std::size_t n, unsigned seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

void expect_near(const std::vector<float>& a, const std::vector<float>& b, float tolerance) {
  ASSERT_EQ(a.size(), b.size());
  for (std::size_t i = 0; i < a.size(); ++i) {
    ASSERT_NEAR(a[i], b[i], tolerance * (1.0f + std::fabs(b[i]))) << i;
  }
}
}  // namespace

TEST(Cuda, ProbeReportsAReason) {
  EXPECT_FALSE(cuda_status().empty());
}

TEST(Cuda, UnavailableDeviceThrowsClearly) {
  if (cuda_available()) GTEST_SKIP() << "a CUDA device exists";
  std::vector<float> x(4);
  EXPECT_THROW(scale(x, 2.0f, Device::cuda), std::runtime_error);
  EXPECT_THROW(Buffer(16, Device::cuda), std::runtime_error);
}

TEST(Cuda, ReduceKernelsMatchCpuBitForBit) {
  REQUIRE_CUDA();
  auto x = random_values(1000003, 1), acc = random_values(x.size(), 2);
  OnDevice<float> dx(x), dacc(acc);
  weighted_accumulate(dacc.span(), dx.span(), 0.7f, Device::cuda);
  weighted_accumulate(acc, x, 0.7f);
  EXPECT_EQ(dacc.host(), acc);
  scale(dacc.span(), 1.5f, Device::cuda);
  scale(acc, 1.5f);
  EXPECT_EQ(dacc.host(), acc);
  EXPECT_EQ(std::bit_cast<std::uint32_t>(sum(dx.span(), Device::cuda)),
            std::bit_cast<std::uint32_t>(sum(x)));
  EXPECT_EQ(std::bit_cast<std::uint32_t>(sum_squares(dx.span(), Device::cuda)),
            std::bit_cast<std::uint32_t>(sum_squares(x)));
  fill(dx.span(), 3.0f, Device::cuda);
  EXPECT_EQ(dx.host(), std::vector<float>(x.size(), 3.0f));
}

TEST(Cuda, ConversionsMatchCpu) {
  REQUIRE_CUDA();
  auto x = random_values(100000, 3, 3000.0f);
  x[0] = 1e9f;
  x[1] = std::ldexp(1.5f, -24);
  x[2] = std::numeric_limits<float>::infinity();
  std::vector<std::uint16_t> half(x.size()), bf(x.size());
  to_fp16(x, half);
  to_bf16(x, bf);
  OnDevice<float> dx(x);
  OnDevice<std::uint16_t> dhalf(std::vector<std::uint16_t>(x.size())), dbf(dhalf.host());
  to_fp16(dx.span(), dhalf.span(), Device::cuda);
  to_bf16(dx.span(), dbf.span(), Device::cuda);
  EXPECT_EQ(dhalf.host(), half);
  EXPECT_EQ(dbf.host(), bf);
  std::vector<float> back(x.size());
  OnDevice<float> dback(back);
  from_fp16(dhalf.span(), dback.span(), Device::cuda);
  from_fp16(half, back);
  EXPECT_EQ(dback.host(), back);
  from_bf16(dbf.span(), dback.span(), Device::cuda);
  from_bf16(bf, back);
  EXPECT_EQ(dback.host(), back);
}

TEST(Cuda, QuantizationMatchesCpuBitForBit) {
  REQUIRE_CUDA();
  auto x = random_values(100000, 4);
  const std::size_t block = 4096;
  std::vector<std::byte> enc(quantized_size(x.size(), block));
  quantize_blockwise(x, enc, block);
  OnDevice<float> dx(x);
  OnDevice<std::byte> denc(std::vector<std::byte>(enc.size()));
  quantize_blockwise(dx.span(), denc.span(), block, Device::cuda);
  EXPECT_TRUE(denc.host() == enc);
  std::vector<float> out(x.size());
  dequantize_blockwise(enc, out, block);
  OnDevice<float> dout(std::vector<float>(x.size()));
  dequantize_blockwise(denc.span(), dout.span(), block, Device::cuda);
  EXPECT_EQ(dout.host(), out);
  dequantize_accumulate(enc, out, 0.5f, block);
  dequantize_accumulate(denc.span(), dout.span(), 0.5f, block, Device::cuda);
  EXPECT_EQ(dout.host(), out);
  std::vector<float> residual(x.size(), 0.0f);
  OnDevice<float> dresidual(residual);
  quantize_with_feedback(x, residual, enc, block);
  quantize_with_feedback(dx.span(), dresidual.span(), denc.span(), block, Device::cuda);
  EXPECT_TRUE(denc.host() == enc);
  EXPECT_EQ(dresidual.host(), residual);
  x[5] = std::nanf("");
  OnDevice<float> dbad(x);
  EXPECT_THROW(quantize_blockwise(dbad.span(), denc.span(), block, Device::cuda),
               std::invalid_argument);
}

TEST(Cuda, OptimizersMatchCpu) {
  REQUIRE_CUDA();
  const std::size_t n = 10000;
  auto p = random_values(n, 5), g = random_values(n, 6);
  std::vector<float> zeros(n, 0.0f);
  {
    auto cp = p, buf = zeros;
    OnDevice<float> dp(p), dg(g), dbuf(zeros);
    SgdConfig c{.lr = 0.1f, .momentum = 0.9f, .weight_decay = 0.01f, .nesterov = true};
    for (int i = 0; i < 3; ++i) {
      sgd_step(cp, g, buf, c);
      sgd_step(dp.span(), dg.span(), dbuf.span(), c, Device::cuda);
    }
    expect_near(dp.host(), cp, 1e-5f);
  }
  {
    auto cp = p, m = zeros, v = zeros;
    OnDevice<float> dp(p), dg(g), dm(zeros), dv(zeros);
    AdamConfig c{.lr = 0.01f, .weight_decay = 0.1f, .decoupled_weight_decay = true};
    for (std::uint64_t t = 1; t <= 3; ++t) {
      adam_step(cp, g, m, v, t, c);
      adam_step(dp.span(), dg.span(), dm.span(), dv.span(), t, c, Device::cuda);
    }
    expect_near(dp.host(), cp, 1e-5f);
  }
  {
    auto cp = p, m = zeros, v = zeros;
    OnDevice<float> dp(p), dg(g), dm(zeros), dv(zeros);
    std::vector<TensorSlice> slices = {{0, 4000}, {4000, 6000}};
    LambConfig c{.lr = 0.01f, .weight_decay = 0.01f};
    for (std::uint64_t t = 1; t <= 2; ++t) {
      lamb_step(cp, g, m, v, slices, t, c);
      lamb_step(dp.span(), dg.span(), dm.span(), dv.span(), slices, t, c, Device::cuda);
    }
    expect_near(dp.host(), cp, 1e-5f);
  }
}

TEST(Cuda, ActivationsLossAndGemmMatchCpu) {
  REQUIRE_CUDA();
  const std::size_t batch = 64, classes = 10, hidden = 32;
  auto x = random_values(batch * hidden, 7), dy = random_values(batch * hidden, 8);
  OnDevice<float> dx(x), ddy(dy), dout(std::vector<float>(x.size()));
  std::vector<float> out(x.size());
  relu_forward(x, out);
  relu_forward(dx.span(), dout.span(), Device::cuda);
  expect_near(dout.host(), out, 0.0f);
  relu_backward(x, dy, out);
  relu_backward(dx.span(), ddy.span(), dout.span(), Device::cuda);
  expect_near(dout.host(), out, 0.0f);
  gelu_forward(x, out);
  gelu_forward(dx.span(), dout.span(), Device::cuda);
  expect_near(dout.host(), out, 1e-5f);
  gelu_backward(x, dy, out);
  gelu_backward(dx.span(), ddy.span(), dout.span(), Device::cuda);
  expect_near(dout.host(), out, 1e-5f);

  auto logits = random_values(batch * classes, 9, 3.0f);
  std::vector<std::int32_t> labels(batch);
  for (std::size_t i = 0; i < batch; ++i) labels[i] = static_cast<std::int32_t>(i % classes);
  std::vector<float> grad(logits.size());
  float loss = softmax_cross_entropy(logits, labels, batch, classes, grad);
  OnDevice<float> dlogits(logits), dgrad(grad);
  OnDevice<std::int32_t> dlabels(labels);
  float dloss = softmax_cross_entropy(dlogits.span(), dlabels.span(), batch, classes, dgrad.span(),
                                      Device::cuda);
  EXPECT_NEAR(dloss, loss, 1e-5f);
  expect_near(dgrad.host(), grad, 1e-5f);

  for (auto ta : {Transpose::no, Transpose::yes}) {
    for (auto tb : {Transpose::no, Transpose::yes}) {
      const std::size_t m = 33, n = 17, k = 45;
      auto a = random_values(m * k, 10), b = random_values(k * n, 11), c = random_values(m * n, 12);
      OnDevice<float> da(a), db(b), dc(c);
      gemm({m, n, k, ta, tb}, 1.5f, a, b, 0.5f, c);
      gemm({m, n, k, ta, tb}, 1.5f, da.span(), db.span(), 0.5f, dc.span(), Device::cuda);
      expect_near(dc.host(), c, 1e-4f);
    }
  }
  std::vector<float> y = random_values(batch * classes, 13), bias = random_values(classes, 14);
  OnDevice<float> dyv(y), dbias(bias);
  add_bias_rows(y, bias, batch, classes);
  add_bias_rows(dyv.span(), dbias.span(), batch, classes, Device::cuda);
  EXPECT_EQ(dyv.host(), y);
  std::vector<float> col(classes);
  OnDevice<float> dcol(col);
  sum_rows(y, col, batch, classes);
  sum_rows(dyv.span(), dcol.span(), batch, classes, Device::cuda);
  EXPECT_EQ(dcol.host(), col);
}
