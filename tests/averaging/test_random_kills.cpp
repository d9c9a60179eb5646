// 100 butterfly rounds, each with one peer killed at a random moment (before
// the round, while it streams, or while it returns averages): every survivor
// finishes by the deadline, holds no NaN, and all survivors agree bit for bit
// on every part reduced by a live reducer. Takes ~15 s; bounded to ~2 minutes.
#include "averaging/butterfly.hpp"
#include "net/link_emulator.hpp"
#include "tests/averaging/butterfly_fixture.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

namespace apiary::averaging {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

TEST(RandomKills, HundredRoundsWithARandomPeerKilledAtARandomMoment) {
  constexpr int kRounds = 100;
  constexpr auto kTimeBudget = 110s;
  const std::vector<std::size_t> sizes{24000, 777};
  std::mt19937 rng(20261122);
  const auto begin = Clock::now();
  int rounds = 0;
  std::size_t rounds_with_exclusions = 0;
  for (; rounds < kRounds && Clock::now() - begin < kTimeBudget; ++rounds) {
    test::Swarm swarm;
    // 0.5 MB/s per connection: a round takes ~100 ms, so most kills land inside it.
    LinkProfile link;
    link.bandwidth_bytes_per_s = 0.5e6;
    link.seed = static_cast<std::uint64_t>(rounds) + 1;
    swarm.add_peers(4, sizes, [&](TransportPtr inner) { return make_link_emulator(inner, link); });
    const std::size_t victim = rng() % 4;
    const auto kill_after = std::chrono::milliseconds(rng() % 110);
    AllReduceOptions options;
    options.chunk_elements = 1024;
    options.min_chunk_elements = 256;
    options.sender_timeout = 500ms;
    options.connect_timeout = 500ms;
    const auto group = swarm.group({1, 2, 3, 4}, {1, 1, 1, 1}, "kill-" + std::to_string(rounds));
    const auto round_time = 3s;
    const auto started = Clock::now();
    auto futures = swarm.start(group, {0, 1, 2, 3}, options, round_time);
    asio::co_spawn(swarm.ctx,
                   test::kill_after(swarm.network, swarm.peers[victim].node->peer_id(), kill_after),
                   asio::detached);
    std::vector<AllReduceResult> results(4);
    for (std::size_t i = 0; i < 4; ++i) {
      if (i == victim) continue;
      results[i] = test::wait(swarm.ctx, futures[i], 10s);
      EXPECT_LT(Clock::now() - started, round_time + 500ms) << "round " << rounds;
      rounds_with_exclusions += !results[i].failed_peers.empty();
    }
    try {
      test::wait(swarm.ctx, futures[victim], 10s);  // ends by its deadline too
    } catch (const std::exception&) {
    }
    const std::size_t total = sizes[0] + sizes[1];
    const auto part_sizes = group_part_sizes(group, total, 0);
    const PartitionPlan plan(sizes, part_sizes, 1024);
    const std::size_t reference = victim == 0 ? 1 : 0;
    for (std::size_t i = 0; i < 4; ++i) {
      if (i == victim) continue;
      for (const auto& t : swarm.peers[i].tensors)
        for (float v : t) ASSERT_TRUE(std::isfinite(v)) << "round " << rounds;
    }
    for (std::size_t part = 0; part < 4; ++part) {
      if (part == victim) continue;  // its part may stay local, differently on each peer
      for (const auto& chunk : plan.part(part).chunks) {
        const float* a = swarm.peers[reference].tensors[chunk.tensor].data() + chunk.offset;
        for (std::size_t i = 0; i < 4; ++i) {
          if (i == victim || i == reference) continue;
          const float* b = swarm.peers[i].tensors[chunk.tensor].data() + chunk.offset;
          ASSERT_EQ(std::memcmp(a, b, chunk.count * sizeof(float)), 0)
              << "round " << rounds << ": part " << part << " differs on peer " << i;
        }
      }
    }
  }
  EXPECT_GE(rounds, 50) << "too few rounds within the time budget";
  EXPECT_GT(rounds_with_exclusions, std::size_t(rounds)) << "few kills landed inside a round";
  std::printf("%d rounds in %.1f s, %zu survivor results with exclusions\n", rounds,
              std::chrono::duration<double>(Clock::now() - begin).count(), rounds_with_exclusions);
}

}  // namespace
}  // namespace apiary::averaging
