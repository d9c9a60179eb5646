#include "averaging/compression.hpp"

#include "core/error.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

using namespace apiary::averaging;

namespace {
std::vector<float> random_values(std::size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}
double max_error(const std::vector<float>& a, const std::vector<float>& b) {
  double worst = 0;
  for (std::size_t i = 0; i < a.size(); ++i)
    worst = std::max(worst, double(std::fabs(a[i] - b[i])));
  return worst;
}
}  // namespace

TEST(Compression, RoundTripsWithinCodecPrecision) {
  const auto values = random_values(10000, 1);
  struct Case {
    Codec codec;
    double tolerance;
    std::size_t bytes;
  };
  for (const Case c : {Case{Codec::none, 0.0, 40000}, Case{Codec::fp16, 4e-3, 20000},
                       Case{Codec::bf16, 3e-2, 20000}, Case{Codec::blockwise8, 0.05, 10000 + 12}}) {
    apiary::Bytes encoded;
    encode_append(c.codec, values, encoded);
    EXPECT_EQ(encoded.size(), c.bytes) << codec_name(c.codec);
    std::vector<float> decoded(values.size());
    decode(c.codec, encoded, decoded);
    EXPECT_LE(max_error(values, decoded), c.tolerance) << codec_name(c.codec);
    std::vector<float> acc(values.size(), 1.0f);
    decode_accumulate(c.codec, encoded, 2.0f, acc);
    for (std::size_t i = 0; i < acc.size(); ++i) ASSERT_FLOAT_EQ(acc[i], 1.0f + 2.0f * decoded[i]);
  }
}

TEST(Compression, WrongPayloadSizeIsBadMessage) {
  apiary::Bytes payload(10);
  std::vector<float> out(3);
  try {
    decode(Codec::none, payload, out);
    FAIL() << "decode accepted a short payload";
  } catch (const apiary::Error& e) {
    EXPECT_EQ(e.code(), apiary::Errc::bad_message);
  }
  EXPECT_THROW(decode_accumulate(Codec::fp16, payload, 1.0f, out), apiary::Error);
}

TEST(Compression, CorruptScaleIsBadMessage) {
  std::vector<float> values(100, 1.0f);
  apiary::Bytes encoded;
  encode_append(Codec::blockwise8, values, encoded);
  const float nan = std::nanf("");
  std::memcpy(encoded.data(), &nan, 4);  // first block's absmax
  std::vector<float> out(100);
  EXPECT_THROW(decode(Codec::blockwise8, encoded, out), apiary::Error);
}

TEST(Compression, ErrorFeedbackCarriesTheResidual) {
  // Sending the same small vector repeatedly with error feedback: the running
  // sum of what was transmitted tracks the running sum of the true values.
  const auto values = random_values(5000, 2);
  std::vector<float> residual(values.size(), 0.0f);
  std::vector<double> sent_sum(values.size(), 0.0);
  const int rounds = 50;
  for (int r = 0; r < rounds; ++r) {
    apiary::Bytes encoded;
    encode_with_feedback(Codec::blockwise8, values, residual, encoded);
    std::vector<float> decoded(values.size());
    decode(Codec::blockwise8, encoded, decoded);
    for (std::size_t i = 0; i < values.size(); ++i) sent_sum[i] += decoded[i];
  }
  double worst = 0;
  for (std::size_t i = 0; i < values.size(); ++i)
    worst = std::max(worst, std::fabs(sent_sum[i] / rounds - values[i]));
  // Without feedback the mean error would stay at the single-shot error (~0.01).
  EXPECT_LT(worst, 2e-3);
}

TEST(Compression, PolicyKeepsSmallTensorsUncompressed) {
  CompressionPolicy policy;
  policy.codec = Codec::fp16;
  policy.min_compressed_elements = 1000;
  EXPECT_EQ(policy.codec_for(0, 999), Codec::none);
  EXPECT_EQ(policy.codec_for(0, 1000), Codec::fp16);
  policy.per_tensor = {std::nullopt, Codec::blockwise8};
  EXPECT_EQ(policy.codec_for(1, 10), Codec::blockwise8);
  EXPECT_EQ(parse_codec("8bit"), Codec::blockwise8);
  EXPECT_FALSE(parse_codec("zstd"));
  EXPECT_FALSE(codec_from_byte(42));
}

TEST(Compression, MisalignedPayloadsDecodeToo) {
  const auto values = random_values(1000, 3);
  for (Codec codec : {Codec::none, Codec::fp16, Codec::bf16, Codec::blockwise8}) {
    apiary::Bytes encoded(1, 0);  // one byte of offset: payload starts misaligned
    encode_append(codec, values, encoded);
    const apiary::ByteSpan payload = apiary::ByteSpan(encoded).subspan(1);
    std::vector<float> decoded(values.size());
    decode(codec, payload, decoded);
    std::vector<float> acc(values.size(), 0.0f);
    decode_accumulate(codec, payload, 1.0f, acc);
    EXPECT_EQ(acc, decoded) << codec_name(codec);
    EXPECT_LE(max_error(values, decoded), 0.05) << codec_name(codec);
  }
}
