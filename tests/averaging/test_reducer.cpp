#include "averaging/reducer.hpp"

#include "core/error.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <numeric>
#include <random>
#include <vector>

using namespace apiary::averaging;

namespace {

Contribution make(Codec codec, const std::vector<float>& values) {
  Contribution c;
  c.codec = codec;
  c.owned.resize(8);  // mimic the wire header so payloads stay aligned
  c.payload_offset = 8;
  encode_append(codec, values, c.owned);
  return c;
}

struct Fixture {
  std::vector<std::size_t> tensors{10};
  std::vector<std::size_t> parts{10};
  PartitionPlan plan{tensors, parts, 4};  // chunks of 4, 4, 2
};

}  // namespace

TEST(Reducer, WeightedAverageInSenderOrderRegardlessOfArrival) {
  Fixture f;
  const std::vector<float> weights{1.0f, 2.0f, 3.0f};
  std::vector<std::vector<float>> data(3);
  for (int s = 0; s < 3; ++s) {
    data[s].resize(10);
    for (int i = 0; i < 10; ++i) data[s][i] = 0.1f * static_cast<float>(s * 10 + i) + 1e-7f * i;
  }
  std::vector<std::vector<float>> results;
  std::vector<std::pair<int, int>> order;  // (sender, chunk)
  for (int s = 0; s < 3; ++s)
    for (int c = 0; c < 3; ++c) order.emplace_back(s, c);
  std::mt19937 rng(7);
  for (int trial = 0; trial < 5; ++trial) {
    std::shuffle(order.begin(), order.end(), rng);
    PartReducer reducer(f.plan.part(0), weights, {true, true, true});
    std::vector<float> out(10, -1.0f);
    std::size_t completed = 0;
    for (auto [s, c] : order) {
      const auto& chunk = f.plan.part(0).chunks[c];
      std::vector<float> piece(data[s].begin() + chunk.offset,
                               data[s].begin() + chunk.offset + chunk.count);
      for (std::size_t done : reducer.add(s, c, make(Codec::none, piece))) {
        ++completed;
        const auto inputs = reducer.take(done);
        const auto& range = f.plan.part(0).chunks[done];
        ASSERT_TRUE(
            average_chunk(inputs, std::span<float>(out).subspan(range.offset, range.count)));
      }
    }
    EXPECT_EQ(completed, 3u);
    EXPECT_TRUE(reducer.finished());
    for (int i = 0; i < 10; ++i)
      EXPECT_NEAR(out[i], (1 * data[0][i] + 2 * data[1][i] + 3 * data[2][i]) / 6, 1e-5);
    results.push_back(out);
  }
  for (const auto& r : results)
    EXPECT_EQ(0, std::memcmp(r.data(), results[0].data(), r.size() * sizeof(float)));
}

TEST(Reducer, ExcludedSenderCompletesWaitingChunksAndIsDropped) {
  Fixture f;
  PartReducer reducer(f.plan.part(0), {1.0f, 1.0f, 1.0f}, {true, true, true});
  // Sender 2 delivers chunk 0 only, then fails; sender 0 and 1 deliver all.
  EXPECT_TRUE(reducer.add(2, 0, make(Codec::none, std::vector<float>(4, 30.0f))).empty());
  for (int s = 0; s < 2; ++s) {
    reducer.add(s, 0, make(Codec::none, std::vector<float>(4, 10.0f * s)));
    reducer.add(s, 1, make(Codec::none, std::vector<float>(4, 10.0f * s)));
    reducer.add(s, 2, make(Codec::none, std::vector<float>(2, 10.0f * s)));
  }
  // Chunk 0 completed with all three; chunks 1 and 2 wait for sender 2.
  auto chunk0 = reducer.take(0);
  EXPECT_EQ(chunk0.contributions.size(), 3u);
  auto completed = reducer.exclude(2);
  EXPECT_EQ(completed, (std::vector<std::size_t>{1, 2}));
  std::vector<float> out(4);
  ASSERT_TRUE(average_chunk(reducer.take(1), out));
  EXPECT_FLOAT_EQ(out[0], 5.0f);  // (0 + 10) / 2: sender 2 not included
  ASSERT_TRUE(average_chunk(chunk0, out));
  EXPECT_FLOAT_EQ(out[0], 40.0f / 3);
  // Late data from the excluded sender is ignored.
  EXPECT_TRUE(reducer.add(2, 2, make(Codec::none, std::vector<float>(2, 1.0f))).empty());
}

TEST(Reducer, GarbageIsRejectedAsBadMessage) {
  Fixture f;
  PartReducer reducer(f.plan.part(0), {1.0f, 1.0f}, {true, false});
  auto expect_bad = [](auto&& fn) {
    try {
      fn();
      ADD_FAILURE() << "accepted garbage";
    } catch (const apiary::Error& e) {
      EXPECT_EQ(e.code(), apiary::Errc::bad_message);
    }
  };
  expect_bad([&] { reducer.add(0, 3, make(Codec::none, std::vector<float>(4))); });
  expect_bad([&] { reducer.add(0, 0, make(Codec::none, std::vector<float>(3))); });
  expect_bad([&] { reducer.add(1, 0, make(Codec::none, std::vector<float>(4))); });  // auxiliary
  EXPECT_EQ(reducer.add(0, 0, make(Codec::fp16, std::vector<float>(4, 2.0f))),
            (std::vector<std::size_t>{0}));
  expect_bad([&] { reducer.add(0, 0, make(Codec::none, std::vector<float>(4))); });  // duplicate
}

TEST(Reducer, ZeroWeightsGiveThePlainMean) {
  Fixture f;
  PartReducer reducer(f.plan.part(0), {0.0f, 0.0f}, {true, true});
  reducer.add(0, 2, make(Codec::none, {1.0f, 2.0f}));
  auto done = reducer.add(1, 2, make(Codec::blockwise8, {3.0f, 4.0f}));
  ASSERT_EQ(done.size(), 1u);
  std::vector<float> out(2);
  ASSERT_TRUE(average_chunk(reducer.take(2), out));
  EXPECT_NEAR(out[0], 2.0f, 0.03f);
  EXPECT_NEAR(out[1], 3.0f, 0.03f);
}

TEST(Reducer, ChunkWithoutContributionsIsNotAveraged) {
  Fixture f;
  PartReducer reducer(f.plan.part(0), {1.0f}, {true});
  auto done = reducer.exclude(0);
  EXPECT_EQ(done.size(), 3u);
  std::vector<float> out(4, 7.0f);
  EXPECT_FALSE(average_chunk(reducer.take(0), out));
  EXPECT_EQ(out[0], 7.0f);
}
