#include "kernels/convert.hpp"

#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <limits>
#include <random>
#include <vector>

using namespace apiary::kernels;

namespace {
constexpr float kInf = std::numeric_limits<float>::infinity();
}

TEST(Fp16, ExactValuesRoundTrip) {
  for (float v : {0.0f, 1.0f, -2.5f, 0.000061035156f /* 2^-14 */, 65504.0f, -65504.0f, 0.5f}) {
    EXPECT_EQ(half_to_float(float_to_half(v)), v) << v;
  }
  EXPECT_EQ(float_to_half(1.0f), 0x3c00);
  EXPECT_EQ(float_to_half(-2.0f), 0xc000);
  EXPECT_EQ(float_to_half(-0.0f), 0x8000);
}

TEST(Fp16, InfinityAndNaN) {
  EXPECT_EQ(float_to_half(kInf), 0x7c00);
  EXPECT_EQ(float_to_half(-kInf), 0xfc00);
  std::uint16_t nan_bits = float_to_half(std::numeric_limits<float>::quiet_NaN());
  EXPECT_EQ(nan_bits & 0x7c00, 0x7c00);
  EXPECT_NE(nan_bits & 0x03ff, 0);
  EXPECT_TRUE(std::isnan(half_to_float(nan_bits)));
  // A signalling NaN whose payload lives only in the low bits must stay NaN.
  std::uint16_t snan = float_to_half(std::bit_cast<float>(0x7f800001u));
  EXPECT_TRUE(std::isnan(half_to_float(snan)));
  EXPECT_TRUE(std::isinf(half_to_float(0x7c00)));
  EXPECT_TRUE(std::isnan(half_to_float(0x7e00)));
}

TEST(Fp16, FiniteOverflowClampsTo65504) {
  EXPECT_EQ(float_to_half(65519.0f), 0x7bff);  // would round to 65504 anyway
  EXPECT_EQ(float_to_half(65520.0f), 0x7bff);  // RNE would give inf: clamped
  EXPECT_EQ(float_to_half(1e10f), 0x7bff);
  EXPECT_EQ(float_to_half(-3.0e38f), 0xfbff);
  EXPECT_EQ(half_to_float(0x7bff), 65504.0f);
}

TEST(Fp16, Subnormals) {
  const float step = std::ldexp(1.0f, -24);  // smallest fp16 subnormal
  EXPECT_EQ(float_to_half(step), 0x0001);
  EXPECT_EQ(half_to_float(0x0001), step);
  EXPECT_EQ(float_to_half(3 * step), 0x0003);
  EXPECT_EQ(half_to_float(0x03ff), 1023 * step);
  EXPECT_EQ(float_to_half(-5 * step), 0x8005);
  // Half a step rounds to even (0); 1.5 steps rounds to 2 steps; just above half rounds up.
  EXPECT_EQ(float_to_half(0.5f * step), 0x0000);
  EXPECT_EQ(float_to_half(1.5f * step), 0x0002);
  EXPECT_EQ(float_to_half(2.5f * step), 0x0002);
  EXPECT_EQ(float_to_half(std::nextafter(0.5f * step, 1.0f)), 0x0001);
  EXPECT_EQ(float_to_half(std::ldexp(1.0f, -30)), 0x0000);
  // The largest subnormal plus half a step rounds up into the smallest normal.
  EXPECT_EQ(float_to_half(1023.5f * step), 0x0400);
}

TEST(Fp16, RoundingTiesToEven) {
  // Between 1 and 1 + 2^-10 the tie (1 + 2^-11) goes to the even mantissa (1.0).
  EXPECT_EQ(float_to_half(1.0f + std::ldexp(1.0f, -11)), 0x3c00);
  // Between 1 + 2^-10 (odd) and 1 + 2^-9 the tie goes up to the even one.
  EXPECT_EQ(float_to_half(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3c02);
  EXPECT_EQ(float_to_half(1.0f + std::ldexp(1.0f, -11) + std::ldexp(1.0f, -20)), 0x3c01);
  // Rounding can carry into the exponent: 2 − 2^-12 rounds to 2.0.
  EXPECT_EQ(float_to_half(2.0f - std::ldexp(1.0f, -12)), 0x4000);
}

TEST(Fp16, AllHalfValuesRoundTrip) {
  for (std::uint32_t bits = 0; bits <= 0xffff; ++bits) {
    auto h = static_cast<std::uint16_t>(bits);
    float f = half_to_float(h);
    if (std::isnan(f)) continue;
    EXPECT_EQ(float_to_half(f), h) << std::hex << bits;
  }
}

TEST(Bf16, RoundingSpecialsAndClamp) {
  EXPECT_EQ(float_to_bfloat16(1.0f), 0x3f80);
  EXPECT_EQ(bfloat16_to_float(0x3f80), 1.0f);
  // Ties to even: 1 + 2^-8 lies halfway between 1 and 1 + 2^-7.
  EXPECT_EQ(float_to_bfloat16(1.0f + std::ldexp(1.0f, -8)), 0x3f80);
  EXPECT_EQ(float_to_bfloat16(1.0f + 3 * std::ldexp(1.0f, -8)), 0x3f82);
  EXPECT_EQ(float_to_bfloat16(kInf), 0x7f80);
  EXPECT_EQ(float_to_bfloat16(-kInf), 0xff80);
  EXPECT_TRUE(std::isnan(bfloat16_to_float(float_to_bfloat16(std::bit_cast<float>(0x7f800001u)))));
  EXPECT_EQ(float_to_bfloat16(std::numeric_limits<float>::max()), 0x7f7f);
  EXPECT_EQ(float_to_bfloat16(-std::numeric_limits<float>::max()), 0xff7f);
  EXPECT_EQ(float_to_bfloat16(std::numeric_limits<float>::denorm_min()), 0x0000);
}

TEST(Convert, SpanVersionsMatchScalarAndCheckSizes) {
  std::vector<float> src(5000);
  for (std::size_t i = 0; i < src.size(); ++i) src[i] = std::sin(0.37f * i) * 1000.0f;
  std::vector<std::uint16_t> half(src.size()), bf(src.size());
  to_fp16(src, half);
  to_bf16(src, bf);
  std::vector<float> back(src.size());
  from_fp16(half, back);
  for (std::size_t i = 0; i < src.size(); ++i) {
    ASSERT_EQ(half[i], float_to_half(src[i]));
    ASSERT_LE(std::fabs(back[i] - src[i]), std::fabs(src[i]) * 0x1p-11f);
  }
  from_bf16(bf, back);
  for (std::size_t i = 0; i < src.size(); ++i) {
    ASSERT_LE(std::fabs(back[i] - src[i]), std::fabs(src[i]) * 0x1p-8f);
  }
  std::vector<std::uint16_t> wrong(3);
  EXPECT_THROW(to_fp16(src, wrong), std::invalid_argument);
}

TEST(Convert, VectorLoopsMatchScalarOnEdgeCases) {
  // Every half value through the span decoder, and floats around every
  // boundary through the span encoder, against the scalar functions.
  std::vector<std::uint16_t> all_halves(65536);
  for (std::size_t i = 0; i < all_halves.size(); ++i) all_halves[i] = static_cast<std::uint16_t>(i);
  std::vector<float> decoded(all_halves.size());
  from_fp16(all_halves, decoded);
  for (std::size_t i = 0; i < all_halves.size(); ++i) {
    ASSERT_EQ(std::bit_cast<std::uint32_t>(decoded[i]),
              std::bit_cast<std::uint32_t>(half_to_float(all_halves[i])))
        << i;
  }
  std::vector<float> floats;
  for (std::uint32_t bits :
       {0x00000000u, 0x00000001u, 0x33000000u, 0x33000001u, 0x387fffffu, 0x38800000u, 0x3f800000u,
        0x3f801000u, 0x3f803000u, 0x477fe000u, 0x477fefffu, 0x477ff000u, 0x4f000000u, 0x7f7fffffu,
        0x7f800000u, 0x7f800001u, 0x7fc00000u, 0x7fffffffu}) {
    floats.push_back(std::bit_cast<float>(bits));
    floats.push_back(std::bit_cast<float>(bits | 0x80000000u));
  }
  std::mt19937 rng(3);
  for (int i = 0; i < 100000; ++i)
    floats.push_back(std::bit_cast<float>(static_cast<std::uint32_t>(rng())));
  std::vector<std::uint16_t> encoded(floats.size());
  to_fp16(floats, encoded);
  for (std::size_t i = 0; i < floats.size(); ++i) {
    ASSERT_EQ(encoded[i], float_to_half(floats[i]))
        << std::hex << std::bit_cast<std::uint32_t>(floats[i]);
  }
}
