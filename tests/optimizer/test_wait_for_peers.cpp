// CollaborativeOptimizer::wait_for_peers over the in-memory FakeSwarm: peers
// started together begin training together, and a missing peer costs at most
// the timeout.
#include "optimizer/collaborative_optimizer.hpp"
#include "tests/optimizer/fake_swarm.hpp"

#include <gtest/gtest.h>

#include <thread>

using namespace apiary::optimizer;
using apiary::optimizer::testing::FakeHub;
using apiary::optimizer::testing::FakeSwarm;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

struct Peer {
  std::vector<float> params = std::vector<float>(4, 0.5f);
  std::vector<float> grads = std::vector<float>(4, 0.0f);
  CollaborativeOptimizer optimizer;
  Peer(std::shared_ptr<FakeHub> hub, const std::string& name)
      : optimizer(std::make_shared<FakeSwarm>(hub, name), options(hub->target), params, grads) {}
  static CollaborativeOptions options(std::uint64_t target) {
    CollaborativeOptions o;
    o.config.run = "wait";
    o.config.target_batch_size = target;
    o.load_state_on_start = false;
    return o;
  }
};

std::shared_ptr<FakeHub> new_hub() {
  auto hub = std::make_shared<FakeHub>();
  hub->target = 40;
  return hub;
}

}  // namespace

// The second peer starts 300 ms after the first: the first waits for it, and
// neither has stepped.
TEST(WaitForPeers, FirstPeerWaitsForTheSecond) {
  auto hub = new_hub();
  Peer first(hub, "first");
  std::size_t second_saw = 0;
  std::thread late([&] {
    std::this_thread::sleep_for(300ms);
    Peer second(hub, "second");
    second_saw = second.optimizer.wait_for_peers(2, 5s);
  });
  const auto started = Clock::now();
  const std::size_t first_saw = first.optimizer.wait_for_peers(2, 5s);
  const auto waited = Clock::now() - started;
  late.join();
  EXPECT_EQ(first_saw, 2u);
  EXPECT_EQ(second_saw, 2u);
  EXPECT_GE(waited, 250ms);
  EXPECT_LT(waited, 4s);
  EXPECT_EQ(first.optimizer.epoch(), 0u);
}

// Nobody else comes: the wait ends at the timeout with the count it saw.
TEST(WaitForPeers, AlonePeerWaitsOnlyUntilTheTimeout) {
  auto hub = new_hub();
  Peer alone(hub, "alone");
  const auto started = Clock::now();
  EXPECT_EQ(alone.optimizer.wait_for_peers(3, 400ms), 1u);
  const auto waited = Clock::now() - started;
  EXPECT_GE(waited, 400ms);
  EXPECT_LT(waited, 3s);
}

// A count already reached returns at once.
TEST(WaitForPeers, CountOfOneReturnsAtOnce) {
  auto hub = new_hub();
  Peer alone(hub, "alone");
  const auto started = Clock::now();
  EXPECT_EQ(alone.optimizer.wait_for_peers(1, 10s), 1u);
  EXPECT_LT(Clock::now() - started, 1s);
}
