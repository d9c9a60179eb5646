// NetworkSwarm over real loopback TCP, in one process: DHT matchmaking and the
// butterfly all-reduce (averaging::Matchmaker), and on-demand state download
// (averaging::StateDonor / download_state) as the collaborative optimizer uses them.
#include "optimizer/network_swarm.hpp"

#include "optimizer/membership.hpp"
#include "optimizer/membership_guard.hpp"
#include "optimizer/revocation.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>

using namespace apiary;
using namespace apiary::optimizer;
using namespace std::chrono_literals;

namespace {

constexpr std::size_t kPeers = 3;

struct LoopbackSwarm {
  std::vector<std::shared_ptr<NetworkSwarm>> peers;

  explicit LoopbackSwarm(CompressionConfig compression = {}) {
    for (std::size_t i = 0; i < kPeers; ++i) {
      NetworkSwarmOptions o;
      o.config.run = "swarm-test";
      o.config.compression = compression;
      o.config.target_batch_size = 1000;
      o.config.averaging.matchmaking_time = 2.0;
      if (i > 0) o.initial_peers = {peers[0]->address()};
      peers.push_back(std::make_shared<NetworkSwarm>(o));
    }
  }

  // Every peer reports and waits (bounded) until it sees all of them.
  bool everyone_sees_everyone() {
    const auto give_up = std::chrono::steady_clock::now() + 20s;
    while (std::chrono::steady_clock::now() < give_up) {
      std::size_t seeing_all = 0;
      for (auto& p : peers) {
        PeerProgress progress;
        progress.report_time = dht::system_dht_time();
        progress.samples_per_second = 1;
        p->report_progress(progress);
        seeing_all += p->global_progress(0).num_peers == kPeers;
      }
      if (seeing_all == kPeers) return true;
      std::this_thread::sleep_for(200ms);
    }
    return false;
  }
};

StateSnapshot make_state(std::uint64_t epoch, float base) {
  StateSnapshot s;
  s.epoch = epoch;
  s.optimizer_steps = epoch * 3 + 1;
  s.tensors = {std::vector<float>(1000, base), std::vector<float>(300000, base + 1)};
  for (std::size_t i = 0; i < s.tensors[1].size(); ++i) s.tensors[1][i] += 1e-3f * (i % 97);
  return s;
}

}  // namespace

TEST(NetworkSwarm, PeersAverageToTheWeightedMean) {
  LoopbackSwarm swarm;
  ASSERT_TRUE(swarm.everyone_sees_everyone()) << "the progress reports did not spread";
  std::vector<std::vector<float>> tensors(kPeers);
  std::vector<AveragingOutcome> outcomes(kPeers);
  const std::vector<float> weights = {1.0f, 2.0f, 5.0f};
  for (std::size_t i = 0; i < kPeers; ++i) {
    tensors[i].resize(50000);
    for (std::size_t k = 0; k < tensors[i].size(); ++k)
      tensors[i][k] = static_cast<float>(i + 1) * 0.5f + 1e-4f * static_cast<float>(k % 113);
  }
  auto expected = tensors[0];
  for (std::size_t k = 0; k < expected.size(); ++k) {
    double sum = 0;
    for (std::size_t i = 0; i < kPeers; ++i) sum += weights[i] * tensors[i][k];
    expected[k] = static_cast<float>(sum / 8.0);
  }
  std::vector<std::thread> threads;
  for (std::size_t i = 0; i < kPeers; ++i) {
    threads.emplace_back([&, i] {
      outcomes[i] = swarm.peers[i]->average("swarm-test.grad.0", {std::span<float>(tensors[i])},
                                            weights[i], 20s, RoundKind::gradients);
    });
  }
  for (auto& t : threads) t.join();
  for (std::size_t i = 0; i < kPeers; ++i) {
    EXPECT_TRUE(outcomes[i].ok) << i << ": " << outcomes[i].error;
    EXPECT_EQ(outcomes[i].group_size, kPeers) << i;
    EXPECT_EQ(tensors[i], tensors[0]) << "survivors hold bit-identical results: " << i;
    for (std::size_t k = 0; k < expected.size(); k += 997)
      EXPECT_NEAR(tensors[i][k], expected[k], 1e-6 * std::abs(expected[k]) + 1e-7) << k;
  }
}

// Optimizer statistics span many magnitudes (Adam's second moments ~1e-10 next
// to ~1): state rounds compress only the parameters (tensor 0) with
// compression.state; statistics travel in fp32, and never through the gradient codec.
TEST(NetworkSwarm, StateRoundsKeepOptimizerStatisticsExact) {
  CompressionConfig compression;
  compression.gradients = Codec::blockwise8;
  compression.state = Codec::blockwise8;
  LoopbackSwarm swarm(compression);
  ASSERT_TRUE(swarm.everyone_sees_everyone()) << "the progress reports did not spread";
  auto make = [](std::size_t peer) {
    std::vector<float> t(50000);
    for (std::size_t k = 0; k < t.size(); ++k)
      t[k] = static_cast<float>(peer + 1) * (k % 2 ? 1.0f : 1e-10f);
    return t;
  };
  // Returns peer 0's result for each tensor of the round.
  auto run_round = [&](const std::string& key, std::size_t tensor_count, RoundKind kind) {
    std::vector<std::vector<std::vector<float>>> tensors(kPeers);
    for (std::size_t i = 0; i < kPeers; ++i)
      for (std::size_t t = 0; t < tensor_count; ++t) tensors[i].push_back(make(i));
    std::vector<AveragingOutcome> outcomes(kPeers);
    std::vector<std::thread> threads;
    for (std::size_t i = 0; i < kPeers; ++i)
      threads.emplace_back([&, i] {
        std::vector<std::span<float>> spans(tensors[i].begin(), tensors[i].end());
        outcomes[i] = swarm.peers[i]->average(key, std::move(spans), 1.0f, 20s, kind);
      });
    for (auto& t : threads) t.join();
    for (std::size_t i = 0; i < kPeers; ++i) EXPECT_TRUE(outcomes[i].ok) << outcomes[i].error;
    return tensors[0];
  };
  // The mean of (1, 2, 3) · x is 2x. Statistics (tensor 1) are exact; the
  // parameters went through 8 bits and lost the tiny values.
  const auto state = run_round("swarm-test.state.0", 2, RoundKind::state);
  for (std::size_t k = 0; k < 10; ++k)
    EXPECT_NEAR(state[1][k], 2.0f * (k % 2 ? 1.0f : 1e-10f), (k % 2 ? 1e-6f : 1e-16f)) << k;
  EXPECT_GT(std::abs(state[0][0] - 2e-10f), 1e-11f);
  // A gradient round uses the gradient codec for every tensor.
  const auto gradients = run_round("swarm-test.grad.0", 2, RoundKind::gradients);
  EXPECT_GT(std::abs(gradients[1][0] - 2e-10f), 1e-11f);
}

TEST(NetworkSwarm, StateIsDownloadedOnDemandFromDonors) {
  LoopbackSwarm swarm;
  // Peer 0 and 1 are donors; peer 1 is newer, so a joiner takes its state.
  std::atomic<std::uint64_t> epoch0{4}, epoch1{5};
  swarm.peers[0]->serve_state([&] { return make_state(epoch0, 1.0f); });
  swarm.peers[1]->serve_state([&] { return make_state(epoch1, 2.0f); });
  // A snapshot of the right shape lets the joiner check the donors' sizes.
  swarm.peers[2]->serve_state([&] { return make_state(0, 0.0f); });

  std::optional<StateSnapshot> state;
  for (int attempt = 0; attempt < 50 && !state; ++attempt) {  // donors announce asynchronously
    state = swarm.peers[2]->download_state(5, 10s);
    if (!state) std::this_thread::sleep_for(200ms);
  }
  ASSERT_TRUE(state.has_value());
  const auto want = make_state(5, 2.0f);
  EXPECT_EQ(state->epoch, 5u);
  EXPECT_EQ(state->optimizer_steps, want.optimizer_steps);
  EXPECT_EQ(state->tensors, want.tensors);

  // Taken on demand: the donor's newer state is what the next joiner gets.
  epoch1 = 9;
  std::this_thread::sleep_for(300ms);  // past the donor's busy window
  state = swarm.peers[2]->download_state(9, 10s);
  ASSERT_TRUE(state.has_value());
  EXPECT_EQ(state->epoch, 9u);

  // Nobody has epoch 10 yet; and a donor that stops serving is not used.
  EXPECT_FALSE(swarm.peers[2]->download_state(10, 5s).has_value());
  swarm.peers[1]->serve_state({});
  std::this_thread::sleep_for(300ms);
  state = swarm.peers[2]->download_state(0, 10s);
  ASSERT_TRUE(state.has_value());
  EXPECT_EQ(state->epoch, 4u) << "only peer 0 still serves";
  EXPECT_EQ(state->tensors[0][0], 1.0f);
}

namespace {

std::vector<float> ramp(std::size_t peer) {
  std::vector<float> v(50000);
  for (std::size_t k = 0; k < v.size(); ++k)
    v[k] = static_cast<float>(peer + 1) + 1e-4f * static_cast<float>(k % 113);
  return v;
}

// Peer 0 prepares first (it leads: earliest declaration), the others after it.
void prepare_everyone(LoopbackSwarm& swarm, const std::string& key) {
  const std::vector<RoundPlan> plan = {{key, {50000}, RoundKind::gradients}};
  swarm.peers[0]->prepare_rounds(plan, 30s);
  std::this_thread::sleep_for(300ms);
  for (std::size_t i = 1; i < kPeers; ++i) swarm.peers[i]->prepare_rounds(plan, 30s);
}

}  // namespace

// Matching ahead of time: groups form while peers compute; nobody's round
// starts until the leader averages; then the followers see round_started()
// and average with it — one group, the exact weighted mean.
TEST(NetworkSwarm, RoundsMatchedAheadStartWhenTheLeaderAverages) {
  LoopbackSwarm swarm;
  ASSERT_TRUE(swarm.everyone_sees_everyone()) << "the progress reports did not spread";
  const std::string key = "swarm-test.grad.7";
  prepare_everyone(swarm, key);
  std::this_thread::sleep_for(1s);  // the group has formed by now, and is held
  for (std::size_t i = 0; i < kPeers; ++i) EXPECT_FALSE(swarm.peers[i]->round_started(key)) << i;

  std::vector<std::vector<float>> tensors(kPeers);
  std::vector<AveragingOutcome> outcomes(kPeers);
  std::vector<bool> saw_start(kPeers, false);
  for (std::size_t i = 0; i < kPeers; ++i) tensors[i] = ramp(i);
  std::vector<std::thread> threads;
  for (std::size_t i = 0; i < kPeers; ++i) {
    threads.emplace_back([&, i] {
      if (i > 0) {  // followers: wait for the leader's start (bounded)
        const auto give_up = std::chrono::steady_clock::now() + 10s;
        while (!swarm.peers[i]->round_started(key) && std::chrono::steady_clock::now() < give_up)
          std::this_thread::sleep_for(2ms);
        saw_start[i] = swarm.peers[i]->round_started(key);
      }
      outcomes[i] = swarm.peers[i]->average(key, {std::span<float>(tensors[i])},
                                            static_cast<float>(i + 1), 20s, RoundKind::gradients);
    });
  }
  for (auto& t : threads) t.join();
  const float mean = (1 * 1.0f + 2 * 2.0f + 3 * 3.0f) / 6.0f;
  for (std::size_t i = 0; i < kPeers; ++i) {
    if (i > 0) {
      EXPECT_TRUE(saw_start[i]) << i << " never saw the leader start the round";
    }
    EXPECT_TRUE(outcomes[i].ok) << i << ": " << outcomes[i].error;
    EXPECT_EQ(outcomes[i].group_size, kPeers) << i;
    EXPECT_EQ(tensors[i], tensors[0]) << i;
    EXPECT_NEAR(tensors[i][0], mean, 1e-5) << i;
  }
}

// The leader abandons the round it prepared (its epoch moved on): the others'
// held group is disbanded, and they average together under the retry key.
TEST(NetworkSwarm, AbandonedLeaderLetsTheOthersAverageWithoutIt) {
  LoopbackSwarm swarm;
  ASSERT_TRUE(swarm.everyone_sees_everyone()) << "the progress reports did not spread";
  const std::string key = "swarm-test.grad.9";
  prepare_everyone(swarm, key);
  std::this_thread::sleep_for(1s);
  swarm.peers[0]->abandon_rounds({key});
  std::vector<std::vector<float>> tensors(kPeers);
  std::vector<AveragingOutcome> outcomes(kPeers);
  std::vector<std::thread> threads;
  const auto started = std::chrono::steady_clock::now();
  for (std::size_t i = 1; i < kPeers; ++i) {
    tensors[i] = ramp(i);
    threads.emplace_back([&, i] {
      outcomes[i] = swarm.peers[i]->average(key, {std::span<float>(tensors[i])}, 1.0f, 20s,
                                            RoundKind::gradients);
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_LT(std::chrono::steady_clock::now() - started, 15s);  // not stuck until the deadline
  for (std::size_t i = 1; i < kPeers; ++i) {
    EXPECT_FALSE(swarm.peers[i]->round_started(key));
    EXPECT_TRUE(outcomes[i].ok) << i << ": " << outcomes[i].error;
    EXPECT_EQ(outcomes[i].group_size, 2u) << i;
    EXPECT_NEAR(tensors[i][0], 2.5f, 1e-5) << i;
  }
}

// A token run's swarm keeps its membership current: once the run key's
// revocation list names a member, the other peers' guards close its
// connections (and their admit checks refuse it), while the rest stay.
TEST(NetworkSwarm, TokenRunClosesTheConnectionsOfARevokedMember) {
  const Identity run_key = Identity::generate();
  const std::string run = "swarm-revoke";
  auto member = [&](const Identity& id, std::vector<PeerAddress> peers,
                    std::shared_ptr<Revocations>& revocations) {
    NetworkSwarmOptions o;
    o.identity = id;
    o.config.run = run;
    o.config.target_batch_size = 1000;
    o.initial_peers = std::move(peers);
    o.token = issue_token(run_key, run, id.peer_id(), unix_seconds() + 3600).encode();
    revocations = std::make_shared<Revocations>(run_key.public_key(), run);
    o.admit = make_admit_check(run_key.public_key(), run, {}, revocations);
    o.revocations = revocations;
    o.membership.refresh_period = 200ms;
    o.membership.sweep_period = 100ms;
    return std::make_shared<NetworkSwarm>(o);
  };
  std::shared_ptr<Revocations> host_list, kept_list, revoked_list;
  auto host = member(run_key, {}, host_list);  // the run key's peer: it can sign the list
  const Identity revoked_id = Identity::generate();
  auto kept = member(Identity::generate(), {host->address()}, kept_list);
  auto revoked = member(revoked_id, {host->address()}, revoked_list);
  auto connections = [](NetworkSwarm& swarm) {
    return swarm.dht()
        .run([](dht::DhtNode& node) -> asio::awaitable<std::size_t> {
          co_return node.rpc().connection_count();
        })
        .get();
  };
  ASSERT_GT(connections(*revoked), 0u);
  const auto list = sign_revocations(run_key, run, unix_seconds(), {revoked_id.peer_id()});
  const auto stored = host->dht()
                          .run([&](dht::DhtNode& node) {
                            return publish_revocations(node, run_key.public_key(), list);
                          })
                          .get();
  ASSERT_TRUE(stored.ok()) << stored.reason();
  const auto give_up = std::chrono::steady_clock::now() + 10s;
  while ((connections(*revoked) > 0 || !kept_list->revoked(revoked_id.peer_id())) &&
         std::chrono::steady_clock::now() < give_up)
    std::this_thread::sleep_for(50ms);
  EXPECT_EQ(connections(*revoked), 0u);
  EXPECT_TRUE(host_list->revoked(revoked_id.peer_id()));
  EXPECT_TRUE(kept_list->revoked(revoked_id.peer_id()));
  EXPECT_GT(connections(*kept), 0u) << "the other member keeps its connection";
}
