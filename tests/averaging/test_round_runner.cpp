// averaging/round_runner: one round from group to outcome; rounds matched
// ahead of time and the "/retry" key of those that failed.
#include "averaging/round_runner.hpp"
#include "tests/averaging/butterfly_fixture.hpp"

#include <gtest/gtest.h>

namespace apiary::averaging {
namespace {

using namespace std::chrono_literals;

// A group source that records what it was asked and answers from a script.
class ScriptedSource final : public GroupSource {
 public:
  explicit ScriptedSource(std::optional<GroupInfo> answer) : answer_(std::move(answer)) {}
  asio::awaitable<std::optional<GroupInfo>> find_group(float weight, std::uint64_t schema,
                                                       Deadline) override {
    weights.push_back(weight);
    schemas.push_back(schema);
    co_return answer_;
  }
  void release() override { ++releases; }
  void abandon() override { ++abandons; }

  std::vector<float> weights;
  std::vector<std::uint64_t> schemas;
  int releases = 0;
  int abandons = 0;

 private:
  std::optional<GroupInfo> answer_;
};

RoundRequest request_for(test::Peer& peer, float weight) {
  RoundRequest request;
  request.weight = weight;
  request.tensors = peer.tensor_set();
  request.deadline = SteadyClock::now() + 5s;
  return request;
}

TEST(RoundRunner, NoGroupLeavesTheTensorsAndSaysWhy) {
  test::Swarm swarm;
  swarm.add_peers(1, {16});
  const auto before = swarm.peers[0].tensors;
  ScriptedSource source(std::nullopt);
  auto future = asio::co_spawn(
      swarm.ctx, run_round(*swarm.peers[0].service, source, request_for(swarm.peers[0], 3.0f)),
      asio::use_future);
  const StepResult step = test::wait(swarm.ctx, future);
  EXPECT_FALSE(step.ok());
  EXPECT_EQ(step.group_size, 1u);
  EXPECT_EQ(step.error, "could not find a group");
  EXPECT_EQ(swarm.peers[0].tensors, before);
  ASSERT_EQ(source.weights.size(), 1u);
  EXPECT_FLOAT_EQ(source.weights[0], 3.0f);
  EXPECT_EQ(source.schemas[0], schema_hash(std::vector<std::size_t>{16}, CompressionPolicy{}));
}

TEST(RoundRunner, PreparedRoundsAndTheRetryKey) {
  test::Swarm swarm;
  swarm.add_peers(1, {16});
  auto& peer = swarm.peers[0];
  const std::uint64_t schema = schema_hash(std::vector<std::size_t>{16}, CompressionPolicy{});
  std::vector<std::string> asked;
  GroupSourceFor groups = [&](const std::string& key) {
    asked.push_back(key);
    return std::make_unique<ScriptedSource>(std::nullopt);
  };
  auto run = [&](std::shared_ptr<PreparedRound> prepared) {
    auto future = asio::co_spawn(
        swarm.ctx, run_round(*peer.service, "run/7", prepared, groups, request_for(peer, 1.0f)),
        asio::use_future);
    return test::wait(swarm.ctx, future);
  };

  // Not begun yet: cancelled (it never begins) and the round matches under its own key.
  auto unbegun = std::make_shared<PreparedRound>("run/7", schema);
  run(unbegun);
  EXPECT_TRUE(unbegun->cancelled());
  unbegun->begin(swarm.ctx.get_executor(), std::make_unique<ScriptedSource>(std::nullopt),
                 SteadyClock::now() + 1s);
  EXPECT_FALSE(unbegun->begun());

  // Begun, found nothing: released, then matched again under the retry key.
  auto failed = std::make_shared<PreparedRound>("run/7", schema);
  auto source = std::make_unique<ScriptedSource>(std::nullopt);
  auto* failed_source = source.get();
  failed->begin(swarm.ctx.get_executor(), std::move(source), SteadyClock::now() + 1s);
  run(failed);
  EXPECT_EQ(failed_source->releases, 1);
  EXPECT_FALSE(failed->started());

  // Begun for other tensors: abandoned, and the retry key again.
  auto stale = std::make_shared<PreparedRound>("run/7", schema + 1);
  source = std::make_unique<ScriptedSource>(std::nullopt);
  auto* stale_source = source.get();
  stale->begin(swarm.ctx.get_executor(), std::move(source), SteadyClock::now() + 1s);
  run(stale);
  EXPECT_EQ(stale_source->abandons, 1);
  EXPECT_EQ(stale_source->releases, 0);

  EXPECT_EQ(asked, (std::vector<std::string>{"run/7", "run/7/retry", "run/7/retry"}));
}

}  // namespace
}  // namespace apiary::averaging
