#include "kernels/quantize.hpp"
#include "kernels/reduce.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

using namespace apiary::kernels;

namespace {
std::vector<float> random_values(std::size_t n, unsigned seed, float stddev = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, stddev);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

std::vector<float> round_trip(const std::vector<float>& x, std::size_t block) {
  std::vector<std::byte> encoded(quantized_size(x.size(), block));
  quantize_blockwise(x, encoded, block);
  std::vector<float> decoded(x.size());
  dequantize_blockwise(encoded, decoded, block);
  return decoded;
}
}  // namespace

TEST(Quantize, SizesAndLayout) {
  EXPECT_EQ(quantized_size(10, 4), 10u + 3 * 4);
  EXPECT_EQ(quantized_size(0, 4), 0u);
  EXPECT_EQ(quantized_block_count(4096, 4096), 1u);
  EXPECT_THROW(quantized_size(10, 0), std::invalid_argument);
  std::vector<float> x = {1.0f, -2.0f, 0.5f, 4.0f, -1.0f};
  std::vector<std::byte> enc(quantized_size(x.size(), 3));
  quantize_blockwise(x, enc, 3);
  float scale0, scale1;
  std::memcpy(&scale0, enc.data(), 4);
  std::memcpy(&scale1, enc.data() + 7, 4);
  EXPECT_EQ(scale0, 2.0f);  // absmax of the first block
  EXPECT_EQ(scale1, 4.0f);
  EXPECT_EQ(static_cast<std::int8_t>(enc[5]), -127);  // -2 → -127
  EXPECT_EQ(static_cast<std::int8_t>(enc[4]), 64);    // 1·127/2 = 63.5 → ties to even 64
  EXPECT_EQ(static_cast<std::int8_t>(enc[11]), 127);  // 4 → 127
}

TEST(Quantize, RoundTripWithinStatedBound) {
  for (std::size_t block : {std::size_t{64}, std::size_t{4096}, std::size_t{1000}}) {
    auto x = random_values(50000, 11, 5.0f);
    x[17] = 1e6f;  // one outlier sets a large scale for its block
    auto decoded = round_trip(x, block);
    for (std::size_t first = 0; first < x.size(); first += block) {
      std::size_t end = std::min(x.size(), first + block);
      float absmax = 0.0f;
      for (std::size_t i = first; i < end; ++i) absmax = std::max(absmax, std::fabs(x[i]));
      const double bound = absmax / 254.0 + std::ldexp(double(absmax), -22);
      for (std::size_t i = first; i < end; ++i) {
        ASSERT_LE(std::fabs(double(x[i]) - decoded[i]), bound) << "block " << block << " i " << i;
      }
    }
  }
}

TEST(Quantize, ConstantAndZeroBlocksAreExact) {
  for (float c : {0.1f, -3.7f, 1e-30f, 12345.678f, 0.0f, -1e30f, 1e-40f /* subnormal */}) {
    std::vector<float> x(5000, c);
    EXPECT_EQ(round_trip(x, 4096), x) << c;
  }
}

TEST(Quantize, SubnormalScaleBlockStaysWithinBound) {
  std::vector<float> x = {1e-40f, 0.0f, -5e-41f, 2e-41f};
  auto decoded = round_trip(x, 4);
  EXPECT_EQ(decoded[0], 1e-40f);
  EXPECT_EQ(decoded[1], 0.0f);
  for (std::size_t i = 0; i < x.size(); ++i) EXPECT_LE(std::fabs(x[i] - decoded[i]), 1e-40f / 200);
}

TEST(Quantize, RejectsNonFiniteInputAndBadScales) {
  std::vector<float> x(100, 1.0f);
  std::vector<std::byte> enc(quantized_size(x.size(), 64));
  x[70] = std::numeric_limits<float>::infinity();
  EXPECT_THROW(quantize_blockwise(x, enc, 64), std::invalid_argument);
  x[70] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_THROW(quantize_blockwise(x, enc, 64), std::invalid_argument);
  x[70] = 1.0f;
  quantize_blockwise(x, enc, 64);
  std::vector<float> out(100);
  float bad = -1.0f;
  std::memcpy(enc.data() + 68, &bad, 4);  // second block's scale
  EXPECT_THROW(dequantize_blockwise(enc, out, 64), std::invalid_argument);
  bad = std::numeric_limits<float>::quiet_NaN();
  std::memcpy(enc.data() + 68, &bad, 4);
  EXPECT_THROW(dequantize_accumulate(enc, out, 1.0f, 64), std::invalid_argument);
  std::vector<std::byte> short_enc(10);
  EXPECT_THROW(dequantize_blockwise(short_enc, out, 64), std::invalid_argument);
}

TEST(Quantize, DecodingArbitraryBytesIsBounded) {
  std::mt19937 rng(5);
  std::vector<std::byte> enc(quantized_size(300, 100));
  for (auto& b : enc) b = static_cast<std::byte>(rng());
  for (std::size_t blk = 0; blk < 3; ++blk) {
    float scale = 2.0f;
    std::memcpy(enc.data() + blk * 104, &scale, 4);
  }
  std::vector<float> out(300);
  dequantize_blockwise(enc, out, 100);
  for (float v : out) ASSERT_LE(std::fabs(v), 2.0f * 128 / 127 + 1e-6f);
}

TEST(Quantize, DequantizeAccumulateMatchesTwoSteps) {
  auto x = random_values(10000, 3);
  std::vector<std::byte> enc(quantized_size(x.size(), 256));
  quantize_blockwise(x, enc, 256);
  std::vector<float> decoded(x.size());
  dequantize_blockwise(enc, decoded, 256);
  auto acc = random_values(x.size(), 4);
  auto expected = acc;
  for (std::size_t i = 0; i < x.size(); ++i) expected[i] += 0.25f * decoded[i];
  dequantize_accumulate(enc, acc, 0.25f, 256);
  EXPECT_EQ(acc, expected);
}

TEST(Quantize, ErrorFeedbackReducesAccumulatedError) {
  // Send the same small-magnitude vector many rounds; compare the sum of what
  // was received against the sum of what was sent, with and without feedback.
  auto x = random_values(4096, 8, 0.01f);
  x[0] = 1.0f;  // a large value makes the step coarse for the small ones
  const int rounds = 50;
  std::vector<std::byte> enc(quantized_size(x.size(), 4096));
  std::vector<float> residual(x.size(), 0.0f), decoded(x.size());
  std::vector<double> received_plain(x.size(), 0.0), received_feedback(x.size(), 0.0);
  for (int r = 0; r < rounds; ++r) {
    quantize_blockwise(x, enc, 4096);
    dequantize_blockwise(enc, decoded, 4096);
    for (std::size_t i = 0; i < x.size(); ++i) received_plain[i] += decoded[i];
    quantize_with_feedback(x, residual, enc, 4096);
    dequantize_blockwise(enc, decoded, 4096);
    for (std::size_t i = 0; i < x.size(); ++i) received_feedback[i] += decoded[i];
  }
  double error_plain = 0.0, error_feedback = 0.0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    error_plain += std::fabs(received_plain[i] - double(x[i]) * rounds);
    error_feedback += std::fabs(received_feedback[i] - double(x[i]) * rounds);
  }
  EXPECT_LT(error_feedback, error_plain / 10) << error_plain << " vs " << error_feedback;
  // The residual stays bounded by one quantization step per element.
  for (float r : residual) ASSERT_LE(std::fabs(r), 1.1f / 127);
}

TEST(Quantize, ThreadedEncodingIsIdentical) {
  auto x = random_values((std::size_t{3} << 20) + 5, 21);
  std::vector<std::byte> a(quantized_size(x.size())), b(a.size());
  unsigned saved = apiary::kernels::cpu_threads();
  set_cpu_threads(1);
  quantize_blockwise(x, a);
  set_cpu_threads(3);
  quantize_blockwise(x, b);
  set_cpu_threads(saved);
  EXPECT_TRUE(a == b);
}

TEST(Quantize, MatchesScalarReference) {
  // The vectorized CPU loops must give exactly the documented formulas
  // (peers with other builds and the CUDA path rely on it).
  auto x = random_values(3000, 31, 2.0f);
  x[10] = 63.5f / 127.0f * 2.0f;  // a tie (code 63.5 → 64) if absmax were 2
  const std::size_t block = 1000;
  std::vector<std::byte> enc(quantized_size(x.size(), block));
  quantize_blockwise(x, enc, block);
  std::vector<float> decoded(x.size());
  dequantize_blockwise(enc, decoded, block);
  for (std::size_t b = 0; b < 3; ++b) {
    float absmax = 0.0f;
    for (std::size_t i = b * block; i < (b + 1) * block; ++i)
      absmax = std::max(absmax, std::fabs(x[i]));
    float stored;
    std::memcpy(&stored, enc.data() + b * (block + 4), 4);
    ASSERT_EQ(stored, absmax);
    const float multiplier = 127.0f / absmax;
    for (std::size_t i = b * block; i < (b + 1) * block; ++i) {
      auto code = static_cast<std::int8_t>(enc[b * (block + 4) + 4 + (i - b * block)]);
      ASSERT_EQ(code, static_cast<std::int8_t>(std::nearbyint(x[i] * multiplier))) << i;
      ASSERT_EQ(decoded[i], absmax * (static_cast<float>(code) / 127.0f)) << i;
    }
  }
}

TEST(Quantize, PipelinedBlocksDetectNonFiniteAndTinyScales) {
  // Full blocks take the pipelined path (encode block b while scanning b + 1).
  const std::size_t block = 64;
  for (std::size_t bad : {std::size_t{5}, std::size_t{64 + 17}, std::size_t{128 + 63}}) {
    std::vector<float> x(3 * block, 0.5f);
    x[bad] = std::numeric_limits<float>::infinity();
    std::vector<std::byte> enc(quantized_size(x.size(), block));
    EXPECT_THROW(quantize_blockwise(x, enc, block), std::invalid_argument) << bad;
  }
  // A subnormal-scale block between normal ones, and a constant block after it.
  std::vector<float> x(4 * block + 10);
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = std::sin(0.1f * i);
  for (std::size_t i = block; i < 2 * block; ++i) x[i] = (i % 2 ? 1e-40f : -3e-41f);
  for (std::size_t i = 2 * block; i < 3 * block; ++i) x[i] = -2.5f;
  auto decoded = round_trip(x, block);
  for (std::size_t i = 2 * block; i < 3 * block; ++i) ASSERT_EQ(decoded[i], -2.5f);
  EXPECT_EQ(decoded[block + 1], 1e-40f);
  for (std::size_t i = 0; i < x.size(); ++i)
    ASSERT_LE(std::fabs(x[i] - decoded[i]), 1.0f / 250) << i;
}
