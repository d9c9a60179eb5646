// Averager API: blocking steps from user threads, rounds in sequence, a step
// without a group, and Moshpit-style grid rotation (16 peers, groups of 4).
#include "averaging/averager.hpp"
#include "averaging/group_source.hpp"
#include "core/metrics.hpp"
#include "tests/averaging/butterfly_fixture.hpp"

#include <gtest/gtest.h>

#include <asio/executor_work_guard.hpp>

#include <thread>

namespace apiary::averaging {
namespace {

using namespace std::chrono_literals;

// N peers on one in-process network whose io_context runs on its own thread.
struct ThreadedSwarm {
  test::Swarm swarm;
  asio::executor_work_guard<asio::io_context::executor_type> work{swarm.ctx.get_executor()};
  std::thread network_thread;

  ThreadedSwarm(std::size_t count, std::vector<std::size_t> sizes) {
    swarm.add_peers(count, sizes);
    // The fixture built services on the nodes; Averagers bring their own.
    for (auto& p : swarm.peers) p.service.reset();
  }
  void start() {
    network_thread = std::thread([this] { swarm.ctx.run(); });
  }
  ~ThreadedSwarm() {
    work.reset();
    swarm.ctx.stop();
    if (network_thread.joinable()) network_thread.join();
  }
  std::vector<GroupMember> members() {
    std::vector<GroupMember> result;
    for (auto& p : swarm.peers) result.push_back({p.node->local_address(), 1.0f, 1.0, false});
    return result;
  }
};

class NoGroup final : public GroupSource {
 public:
  asio::awaitable<std::optional<GroupInfo>> find_group(
      float, std::uint64_t, std::chrono::steady_clock::time_point) override {
    co_return std::nullopt;
  }
};

TEST(Averager, BlockingStepsFromUserThreads) {
  ThreadedSwarm threaded(4, {3000, 10});
  auto members = threaded.members();
  std::vector<std::unique_ptr<Averager>> averagers;
  std::vector<std::vector<float>> before;
  for (auto& p : threaded.swarm.peers) {
    std::vector<std::span<float>> spans;
    for (auto& t : p.tensors) spans.emplace_back(t);
    before.push_back(p.tensors[0]);
    AveragerOptions options;
    options.allreduce.chunk_elements = 512;
    options.allreduce.sender_timeout = 2s;
    averagers.push_back(std::make_unique<Averager>(
        *p.node, spans, std::make_unique<StaticGroupSource>("test", members, p.node->peer_id()),
        options));
  }
  threaded.start();
  const std::vector<float> weights{1, 1, 2, 4};
  for (int round = 0; round < 2; ++round) {
    std::vector<StepResult> results(4);
    std::vector<std::thread> users;
    for (std::size_t i = 0; i < 4; ++i) {
      users.emplace_back([&, i] {
        results[i] = averagers[i]->step(weights[i], std::chrono::steady_clock::now() + 10s);
      });
    }
    for (auto& u : users) u.join();
    for (const auto& r : results) {
      EXPECT_EQ(r.group_size, 4u);
      EXPECT_TRUE(r.failed_peers.empty());
      EXPECT_EQ(r.chunks_local, 0u);
      EXPECT_GT(r.seconds, 0.0);
    }
  }
  // After round 1 everybody holds the weighted mean; round 2 keeps it.
  for (std::size_t k = 0; k < before[0].size(); ++k) {
    const double mean = (before[0][k] + before[1][k] + 2 * before[2][k] + 4 * before[3][k]) / 8;
    for (auto& p : threaded.swarm.peers) ASSERT_NEAR(p.tensors[0][k], mean, 1e-5);
  }
  EXPECT_GE(metrics::Registry::global().counter("apiary_averaging_rounds_total").value(), 8u);
}

TEST(Averager, StepWithoutGroupLeavesBuffersAlone) {
  ThreadedSwarm threaded(1, {100});
  auto& peer = threaded.swarm.peers[0];
  const auto before = peer.tensors[0];
  Averager averager(*peer.node, {peer.tensors[0]}, std::make_unique<NoGroup>());
  threaded.start();
  const auto result = averager.step(1.0f, std::chrono::steady_clock::now() + 1s);
  EXPECT_EQ(result.group_size, 1u);
  EXPECT_EQ(peer.tensors[0], before);
  EXPECT_THROW(averager.step(-1.0f, std::chrono::steady_clock::now() + 1s), Error);
}

TEST(Averager, GridRotationReachesTheGlobalMeanInTwoRounds) {
  ThreadedSwarm threaded(16, {2000});
  auto members = threaded.members();
  std::vector<double> mean(2000, 0.0);
  for (auto& p : threaded.swarm.peers)
    for (std::size_t k = 0; k < mean.size(); ++k) mean[k] += p.tensors[0][k] / 16.0;
  std::vector<std::unique_ptr<Averager>> averagers;
  for (auto& p : threaded.swarm.peers) {
    AveragerOptions options;
    options.allreduce.chunk_elements = 256;
    averagers.push_back(std::make_unique<Averager>(
        *p.node, std::vector<std::span<float>>{p.tensors[0]},
        std::make_unique<GridGroupSource>("grid", members, 4, p.node->peer_id()), options));
  }
  threaded.start();
  for (int round = 0; round < 2; ++round) {
    std::vector<std::thread> users;
    std::vector<StepResult> results(16);
    for (std::size_t i = 0; i < 16; ++i)
      users.emplace_back([&, i] {
        results[i] = averagers[i]->step(1.0f, std::chrono::steady_clock::now() + 10s);
      });
    for (auto& u : users) u.join();
    for (const auto& r : results) EXPECT_EQ(r.group_size, 4u);
  }
  for (auto& p : threaded.swarm.peers)
    for (std::size_t k = 0; k < mean.size(); ++k) ASSERT_NEAR(p.tensors[0][k], mean[k], 1e-4);
}

}  // namespace
}  // namespace apiary::averaging
