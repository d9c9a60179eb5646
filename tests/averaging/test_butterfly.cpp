// Butterfly all-reduce between in-process peers: exact weighted averages,
// bit-identical results, compression, and faults (dead sender, dead reducer,
// garbage, wrong schema, a reducer that never answers).
#include "averaging/butterfly.hpp"
#include "averaging/stream_wire.hpp"
#include "net/link_emulator.hpp"
#include "tests/averaging/butterfly_fixture.hpp"

#include <gtest/gtest.h>

#include <asio/thread_pool.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>

namespace apiary::averaging {
namespace {

using namespace std::chrono_literals;
using test::Swarm;

// The weighted mean over `who` of every tensor.
std::vector<std::vector<float>> weighted_mean(
    const std::vector<std::vector<std::vector<float>>>& data, const std::vector<float>& weights,
    const std::vector<std::size_t>& who) {
  std::vector<std::vector<float>> mean(data[0].size());
  double total = 0;
  for (std::size_t i : who) total += weights[i];
  for (std::size_t t = 0; t < mean.size(); ++t) {
    mean[t].resize(data[0][t].size());
    for (std::size_t k = 0; k < mean[t].size(); ++k) {
      double sum = 0;
      for (std::size_t i : who) sum += weights[i] * double(data[i][t][k]);
      mean[t][k] = static_cast<float>(sum / total);
    }
  }
  return mean;
}

std::vector<std::vector<std::vector<float>>> snapshot(Swarm& swarm) {
  std::vector<std::vector<std::vector<float>>> data;
  for (auto& p : swarm.peers) data.push_back(p.tensors);
  return data;
}

bool same_bits(std::span<const float> a, std::span<const float> b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size_bytes()) == 0;
}

AllReduceOptions small_chunks() {
  AllReduceOptions options;
  options.chunk_elements = 256;
  options.sender_timeout = 400ms;
  options.connect_timeout = 400ms;
  return options;
}

TEST(Butterfly, FourPeersReachTheExactWeightedMean) {
  Swarm swarm;
  const std::vector<std::size_t> sizes{1000, 37, 5000};
  swarm.add_peers(4, sizes);
  const std::vector<float> weights{1, 2, 3, 4};
  // Peer 2 is in client mode (bandwidth 0): it reduces nothing but still averages.
  const auto before = snapshot(swarm);
  asio::thread_pool pool(2);
  auto options = small_chunks();
  options.compute = pool.get_executor();
  // Each peer knows only its own weight; the others' arrive in stream headers.
  std::vector<std::future<AllReduceResult>> futures;
  for (std::size_t i = 0; i < 4; ++i) {
    std::vector<float> only_mine(4, 1.0f);
    only_mine[i] = weights[i];
    auto group = swarm.group(only_mine, {1.0, 2.0, 0.0, 1.5});
    auto started = swarm.start(group, {i}, options, 10s);
    futures.push_back(std::move(started[0]));
  }
  for (auto& f : futures) {
    const auto result = test::wait(swarm.ctx, f);
    EXPECT_EQ(result.group_size, 4u);
    EXPECT_TRUE(result.failed_peers.empty());
    EXPECT_EQ(result.chunks_local, 0u);
    EXPECT_GT(result.chunks_averaged, 0u);
    EXPECT_GT(result.bytes_sent, 0u);
    EXPECT_FALSE(result.deadline_hit);
  }
  const auto mean = weighted_mean(before, weights, {0, 1, 2, 3});
  for (std::size_t t = 0; t < sizes.size(); ++t) {
    for (std::size_t k = 0; k < sizes[t]; ++k)
      ASSERT_NEAR(swarm.peers[0].tensors[t][k], mean[t][k], 1e-5) << t << "/" << k;
    for (std::size_t i = 1; i < 4; ++i)
      EXPECT_TRUE(same_bits(swarm.peers[i].tensors[t], swarm.peers[0].tensors[t]));
  }
}

TEST(Butterfly, CompressedRoundsStayBitIdenticalAndClose) {
  for (Codec codec : {Codec::fp16, Codec::blockwise8}) {
    Swarm swarm;
    const std::vector<std::size_t> sizes{20000, 100};
    swarm.add_peers(3, sizes);
    const auto before = snapshot(swarm);
    auto options = small_chunks();
    options.chunk_elements = 8192;
    options.compression.codec = codec;
    options.compression.min_compressed_elements = 1000;  // tensor 1 stays fp32
    auto group = swarm.group({1, 1, 1}, {1, 1, 1});
    auto futures = swarm.start(group, {0, 1, 2}, options, 10s);
    std::uint64_t sent = 0;
    for (auto& f : futures) {
      const auto result = test::wait(swarm.ctx, f);
      EXPECT_TRUE(result.failed_peers.empty());
      sent += result.bytes_sent;
    }
    const auto mean = weighted_mean(before, {1, 1, 1}, {0, 1, 2});
    const double tolerance = codec == Codec::fp16 ? 3e-3 : 6e-2;
    for (std::size_t k = 0; k < sizes[0]; ++k)
      ASSERT_NEAR(swarm.peers[0].tensors[0][k], mean[0][k], tolerance) << codec_name(codec);
    for (std::size_t k = 0; k < sizes[1]; ++k)
      ASSERT_NEAR(swarm.peers[0].tensors[1][k], mean[1][k], 1e-6);  // uncompressed tensor
    for (std::size_t i = 1; i < 3; ++i)
      for (std::size_t t = 0; t < 2; ++t)
        EXPECT_TRUE(same_bits(swarm.peers[i].tensors[t], swarm.peers[0].tensors[t]));
    // fp32 would move 2·(n−1)/n·S per peer each way: 3 peers × 2/3 × 80 KB ≈ 160 KB.
    const double fp32_bytes = 3 * (2.0 / 3.0) * 80000 * 2;
    EXPECT_LT(double(sent), fp32_bytes * (codec == Codec::fp16 ? 0.6 : 0.35)) << codec_name(codec);
  }
}

TEST(Butterfly, AbsentPeerIsExcludedAndItsPartStaysLocal) {
  Swarm swarm;
  const std::vector<std::size_t> sizes{4000};
  swarm.add_peers(4, sizes);
  const auto before = snapshot(swarm);
  const std::vector<float> weights{1, 1, 1, 1};
  auto group = swarm.group(weights, {1, 1, 1, 1});
  // Peer 3 never runs the round: it neither sends nor reduces.
  auto futures = swarm.start(group, {0, 1, 2}, small_chunks(), 10s);
  const auto begin = std::chrono::steady_clock::now();
  for (auto& f : futures) {
    const auto result = test::wait(swarm.ctx, f);
    ASSERT_EQ(result.failed_peers.size(), 1u);
    EXPECT_EQ(result.failed_peers[0], swarm.peers[3].node->peer_id());
    EXPECT_GT(result.chunks_local, 0u);
  }
  EXPECT_LT(std::chrono::steady_clock::now() - begin, 8s);
  const auto plan = PartitionPlan(sizes, group_part_sizes(group, 4000, 0), 256);
  const auto mean = weighted_mean(before, weights, {0, 1, 2});
  for (std::size_t p = 0; p < 4; ++p) {
    for (std::size_t k = plan.part(p).flat_begin; k < plan.part(p).flat_end; ++k) {
      for (std::size_t i = 0; i < 3; ++i) {
        const float expected = p == 3 ? before[i][0][k] : mean[0][k];
        ASSERT_NEAR(swarm.peers[i].tensors[0][k], expected, 1e-5) << p << " " << i;
      }
    }
  }
}

TEST(Butterfly, SenderKilledMidRound) {
  Swarm swarm;
  const std::vector<std::size_t> sizes{128 * 1024};
  // Every link is slow (2 MB/s) so the round lasts long enough (~0.4 s) to
  // kill a peer in it.
  LinkProfile slow;
  slow.bandwidth_bytes_per_s = 2e6;
  swarm.add_peers(4, sizes, [&](TransportPtr inner) { return make_link_emulator(inner, slow); });
  const auto before = snapshot(swarm);
  const std::vector<float> weights{1, 1, 1, 1};
  auto group = swarm.group(weights, {1, 1, 1, 1});
  auto options = small_chunks();
  options.chunk_elements = 2048;
  auto futures = swarm.start(group, {0, 1, 2, 3}, options, 10s);
  asio::co_spawn(swarm.ctx, test::kill_after(swarm.network, swarm.peers[3].node->peer_id(), 60ms),
                 asio::detached);
  std::vector<AllReduceResult> results;
  for (std::size_t i = 0; i < 3; ++i) results.push_back(test::wait(swarm.ctx, futures[i]));
  try {
    test::wait(swarm.ctx, futures[3]);  // the victim's own round ends too, by its deadline
  } catch (const std::exception&) {
  }
  for (const auto& r : results) {
    EXPECT_NE(
        std::find(r.failed_peers.begin(), r.failed_peers.end(), swarm.peers[3].node->peer_id()),
        r.failed_peers.end());
  }
  // Survivors agree bit for bit on every part reduced by a live reducer; each
  // chunk is the mean with or without the victim's contribution.
  const auto plan = PartitionPlan(sizes, group_part_sizes(group, sizes[0], 0), 2048);
  const auto mean3 = weighted_mean(before, weights, {0, 1, 2});
  const auto mean4 = weighted_mean(before, weights, {0, 1, 2, 3});
  for (std::size_t p = 0; p < 3; ++p) {
    for (const auto& chunk : plan.part(p).chunks) {
      const std::span<const float> a(swarm.peers[0].tensors[0].data() + chunk.offset, chunk.count);
      for (std::size_t i = 1; i < 3; ++i)
        ASSERT_TRUE(same_bits(
            a,
            std::span<const float>(swarm.peers[i].tensors[0].data() + chunk.offset, chunk.count)));
      const bool with = std::fabs(a[0] - mean4[0][chunk.offset]) < 1e-5;
      const bool without = std::fabs(a[0] - mean3[0][chunk.offset]) < 1e-5;
      ASSERT_TRUE(with || without) << "part " << p;
      for (std::size_t k = 0; k < chunk.count; ++k)
        ASSERT_NEAR(a[k], (with ? mean4 : mean3)[0][chunk.offset + k], 1e-5);
    }
  }
}

// A rogue member that opens streams to every reducer and sends `payload` as
// its first chunk after a header with the given schema hash.
asio::awaitable<void> rogue_sender(rpc::RpcNode& node, GroupInfo group, std::size_t me,
                                   std::uint64_t schema_hash, std::size_t total, Bytes chunk) {
  for (std::size_t r = 0; r < group.members.size(); ++r) {
    if (r == me) continue;
    try {
      auto stream = co_await node.open_stream(group.members[r].address, kAllReduceMethod);
      StreamHeader fields{group.group_id,
                          static_cast<std::uint32_t>(me),
                          static_cast<std::uint32_t>(r),
                          schema_hash,
                          total,
                          1.0f};
      Bytes header = encode_stream_header(fields);
      co_await stream->write(std::move(header));
      co_await stream->write(chunk);
      co_await stream->close_write();
      while (co_await stream->read(2000ms)) {
      }
    } catch (const std::exception&) {
    }
  }
}

void run_with_rogue(std::uint64_t schema_hash, Bytes chunk) {
  Swarm swarm;
  const std::vector<std::size_t> sizes{3000};
  swarm.add_peers(4, sizes);
  const auto before = snapshot(swarm);
  const std::vector<float> weights{1, 1, 1, 1};
  auto group = swarm.group(weights, {1, 1, 1, 0});  // the rogue (3) owns no part
  auto futures = swarm.start(group, {0, 1, 2}, small_chunks(), 10s);
  asio::co_spawn(swarm.ctx,
                 rogue_sender(*swarm.peers[3].node, group, 3, schema_hash, 3000, std::move(chunk)),
                 asio::detached);
  for (auto& f : futures) {
    const auto result = test::wait(swarm.ctx, f);
    ASSERT_EQ(result.failed_peers.size(), 1u);
    EXPECT_EQ(result.failed_peers[0], swarm.peers[3].node->peer_id());
    EXPECT_EQ(result.chunks_local, 0u);
  }
  const auto mean = weighted_mean(before, weights, {0, 1, 2});
  for (std::size_t i = 0; i < 3; ++i)
    for (std::size_t k = 0; k < sizes[0]; ++k)
      ASSERT_NEAR(swarm.peers[i].tensors[0][k], mean[0][k], 1e-5);
}

TEST(Butterfly, GarbageSenderIsExcluded) {
  Bytes wrong_size(8 + 12, 0);  // chunk 0, codec none, 3 floats instead of 256
  run_with_rogue(42, wrong_size);
  Bytes bad_codec(8 + 1024, 0);
  bad_codec[4] = 99;
  run_with_rogue(42, bad_codec);
  run_with_rogue(42, Bytes{1, 2, 3});  // truncated header
}

TEST(Butterfly, WrongSchemaIsRefused) {
  Bytes fine(8 + 256 * 4, 0);
  run_with_rogue(7, fine);
}

TEST(Butterfly, SilentReducerCannotHoldTheRoundPastItsDeadline) {
  Swarm swarm;
  const std::vector<std::size_t> sizes{2000};
  swarm.add_peers(3, sizes);
  // Peer 2 answers the stream method itself and never replies.
  swarm.peers[2].service.reset();
  swarm.peers[2].node->add_stream_method(
      std::string(kAllReduceMethod),
      [](const rpc::RequestContext&, rpc::StreamPtr stream) -> asio::awaitable<void> {
        Bytes accepted(1, kStreamAccepted);
        co_await stream->write(std::move(accepted));
        while (co_await stream->read(5000ms)) {
        }
        co_await test::sleep_for(5000ms);
      });
  const auto before = snapshot(swarm);
  auto group = swarm.group({1, 1, 1}, {1, 1, 1});
  const auto begin = std::chrono::steady_clock::now();
  auto futures = swarm.start(group, {0, 1}, small_chunks(), 1500ms);
  for (auto& f : futures) {
    const auto result = test::wait(swarm.ctx, f);
    EXPECT_TRUE(result.deadline_hit);
    EXPECT_GT(result.chunks_local, 0u);
  }
  EXPECT_LT(std::chrono::steady_clock::now() - begin, 3s);
  // Peer 2's part kept local values on peers 0 and 1.
  const auto plan = PartitionPlan(sizes, group_part_sizes(group, 2000, 0), 256);
  for (std::size_t i = 0; i < 2; ++i)
    for (std::size_t k = plan.part(2).flat_begin; k < plan.part(2).flat_end; ++k)
      ASSERT_EQ(swarm.peers[i].tensors[0][k], before[i][0][k]);
}

TEST(Butterfly, RejectsAGroupWithoutThisPeer) {
  Swarm swarm;
  swarm.add_peers(3, {10});
  auto group = swarm.group({1, 1, 1}, {1, 1, 1});
  group.members.pop_back();
  auto futures = swarm.start(group, {2}, small_chunks(), 1s);
  EXPECT_THROW(test::wait(swarm.ctx, futures[0]), Error);
}

}  // namespace
}  // namespace apiary::averaging
