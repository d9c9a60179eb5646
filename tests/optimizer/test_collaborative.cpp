// CollaborativeOptimizer logic over the in-memory FakeSwarm (threads, no sockets).
#include "core/error.hpp"
#include "optimizer/collaborative_optimizer.hpp"
#include "tests/optimizer/fake_swarm.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <latch>
#include <limits>
#include <map>
#include <random>
#include <thread>

using namespace apiary::optimizer;
using apiary::optimizer::testing::FakeHub;
using apiary::optimizer::testing::FakeSwarm;

namespace {

constexpr std::size_t kDim = 8;

// Linear regression y = w*·x: each peer draws its own samples.
struct Peer {
  std::vector<float> params = std::vector<float>(kDim, 0.0f);
  std::vector<float> grads = std::vector<float>(kDim, 0.0f);
  std::mt19937 rng;
  std::vector<float> truth;
  explicit Peer(unsigned seed) : rng(seed) {
    for (std::size_t i = 0; i < kDim; ++i) truth.push_back(static_cast<float>(i) * 0.25f - 1.0f);
  }
  void compute_gradients(std::size_t batch) {
    std::normal_distribution<float> n;
    std::fill(grads.begin(), grads.end(), 0.0f);
    for (std::size_t b = 0; b < batch; ++b) {
      float x[kDim], err = 0;
      for (std::size_t i = 0; i < kDim; ++i) {
        x[i] = n(rng);
        err += (params[i] - truth[i]) * x[i];
      }
      for (std::size_t i = 0; i < kDim; ++i) grads[i] += err * x[i] / static_cast<float>(batch);
    }
  }
  double distance() const {
    double d = 0;
    for (std::size_t i = 0; i < kDim; ++i) d += (params[i] - truth[i]) * (params[i] - truth[i]);
    return d;
  }
};

CollaborativeOptions options(std::uint64_t target) {
  CollaborativeOptions o;
  o.config.run = "test";
  o.config.target_batch_size = target;
  o.config.optimizer.name = OptimizerName::sgd;
  o.config.optimizer.lr = 0.1;
  o.config.optimizer.momentum = 0.0;
  o.config.averaging.average_state_every = 1;
  o.config.averaging.averaging_timeout = 2.0;
  o.report_period_seconds = 0.0;  // report every step: the fake hub is free
  return o;
}

std::size_t hash_of(const std::vector<float>& v) {
  return std::hash<std::string_view>{}(
      std::string_view(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(float)));
}

std::vector<std::unique_ptr<Peer>> make_peers(int count, unsigned first_seed) {
  std::vector<std::unique_ptr<Peer>> peers;
  for (int p = 0; p < count; ++p) peers.push_back(std::make_unique<Peer>(first_seed + p));
  return peers;
}

// What a peer saw at the end of an epoch: its agreed parameters' hash and the round report.
struct EpochRecord {
  std::size_t params_hash = 0;
  RoundReport round;
};
using PeerHistory = std::map<std::uint64_t, EpochRecord>;  // epoch reached → record

// Trains `peers` together (one thread each) until each reaches `epochs` (or 30 s).
std::vector<PeerHistory> train_together(const std::shared_ptr<FakeHub>& hub,
                                        std::vector<std::unique_ptr<Peer>>& peers,
                                        CollaborativeOptions opts, std::uint64_t epochs) {
  std::vector<PeerHistory> history(peers.size());
  std::vector<std::thread> threads;
  opts.load_state_on_start = false;
  // Everyone reports before anyone trains, so no peer runs an epoch alone.
  std::latch all_reporting(static_cast<std::ptrdiff_t>(peers.size()));
  for (std::size_t p = 0; p < peers.size(); ++p) {
    threads.emplace_back([&, p] {
      auto swarm = std::make_shared<FakeSwarm>(hub, "peer" + std::to_string(p));
      CollaborativeOptimizer opt(swarm, opts, peers[p]->params, peers[p]->grads);
      all_reporting.arrive_and_wait();
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
      while (opt.epoch() < epochs && std::chrono::steady_clock::now() < deadline) {
        peers[p]->compute_gradients(16);
        // The agreed parameters (with overlap, the live ones add this peer's guess).
        if (opt.step(16))
          history[p][opt.epoch()] = {hash_of(opt.snapshot().tensors[0]), opt.last_round()};
        std::this_thread::sleep_for(std::chrono::microseconds(200));
      }
    });
  }
  for (auto& t : threads) t.join();
  return history;
}

// Epochs after which every peer applied a round of the whole group (and, when
// `with_state`, the state average too): their parameters must be identical.
int compare_full_group_epochs(const std::vector<PeerHistory>& history, bool with_state) {
  const std::size_t peers = history.size();
  auto full = [&](const EpochRecord& r) {
    return r.round.applied && r.round.gradients.group_size == peers &&
           (!with_state || r.round.state_averaged);
  };
  int compared = 0;
  for (const auto& [epoch, first] : history[0]) {
    bool all_full = true;
    for (const auto& h : history) all_full &= h.count(epoch) && full(h.at(epoch));
    if (!all_full) continue;
    for (std::size_t p = 1; p < peers; ++p)
      EXPECT_EQ(history[p].at(epoch).params_hash, first.params_hash)
          << "epoch " << epoch << " peer " << p;
    ++compared;
  }
  return compared;
}

}  // namespace

TEST(CollaborativeOptimizer, PeersHoldIdenticalParametersAfterEachAveragedEpoch) {
  auto hub = std::make_shared<FakeHub>();
  hub->target = 192;
  constexpr int kPeers = 3, kEpochs = 6;
  auto peers = make_peers(kPeers, 100);
  const double start_distance = peers[0]->distance();
  const auto history = train_together(hub, peers, options(hub->target), kEpochs);
  EXPECT_GE(compare_full_group_epochs(history, false), kEpochs - 2)
      << "too few epochs averaged by the whole group";
  EXPECT_LT(peers[0]->distance(), 0.5 * start_distance) << "training did not make progress";
}

TEST(CollaborativeOptimizer, FailedAveragingProceedsWithLocalGradients) {
  auto hub = std::make_shared<FakeHub>();
  hub->target = 64;
  hub->fail_averaging = true;
  Peer peer(7);
  auto swarm = std::make_shared<FakeSwarm>(hub, "alone");
  CollaborativeOptimizer opt(swarm, options(hub->target), peer.params, peer.grads);
  const double before = peer.distance();
  for (int i = 0; i < 200 && opt.epoch() < 5; ++i) {
    peer.compute_gradients(16);
    opt.step(16);
  }
  EXPECT_EQ(opt.epoch(), 5u);
  EXPECT_EQ(opt.failed_rounds(), 5u);
  EXPECT_FALSE(opt.last_round().averaged);
  EXPECT_LT(peer.distance(), before);
}

TEST(CollaborativeOptimizer, SlowPeerContributesWithoutBlocking) {
  auto hub = std::make_shared<FakeHub>();
  hub->target = 256;
  constexpr int kEpochs = 4;
  std::vector<std::unique_ptr<Peer>> peers;
  for (int p = 0; p < 3; ++p) peers.push_back(std::make_unique<Peer>(200 + p));
  std::atomic<std::uint64_t> slow_contributed{0};
  std::vector<std::uint64_t> final_epoch(3);
  std::vector<std::thread> threads;
  for (int p = 0; p < 3; ++p) {
    threads.emplace_back([&, p] {
      auto swarm = std::make_shared<FakeSwarm>(hub, "peer" + std::to_string(p));
      auto opts = options(hub->target);
      opts.load_state_on_start = false;
      CollaborativeOptimizer opt(swarm, opts, peers[p]->params, peers[p]->grads);
      const auto pause = std::chrono::microseconds(p == 2 ? 1500 : 500);  // peer 2 is 3× slower
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
      while (opt.epoch() < kEpochs && std::chrono::steady_clock::now() < deadline) {
        peers[p]->compute_gradients(8);
        if (opt.step(8) && p == 2) slow_contributed += opt.last_round().local_samples;
        std::this_thread::sleep_for(pause);
      }
      final_epoch[p] = opt.epoch();
    });
  }
  for (auto& t : threads) t.join();
  for (int p = 0; p < 3; ++p) EXPECT_GE(final_epoch[p], static_cast<std::uint64_t>(kEpochs)) << p;
  EXPECT_GT(slow_contributed.load(), 0u);
  // The slow peer contributes less than a third of the samples: the others did not wait for it.
  EXPECT_LT(slow_contributed.load(), kEpochs * hub->target / 3);
}

TEST(CollaborativeOptimizer, LateJoinerDownloadsStateAndMatches) {
  auto hub = std::make_shared<FakeHub>();
  hub->target = 32;
  hub->group_wait = std::chrono::milliseconds(200);
  Peer first(1), late(2);
  auto swarm1 = std::make_shared<FakeSwarm>(hub, "first");
  CollaborativeOptimizer opt1(swarm1, options(hub->target), first.params, first.grads);
  for (int i = 0; i < 100 && opt1.epoch() < 3; ++i) {
    first.compute_gradients(16);
    opt1.step(16);
  }
  ASSERT_EQ(opt1.epoch(), 3u);
  auto swarm2 = std::make_shared<FakeSwarm>(hub, "late");
  CollaborativeOptimizer opt2(swarm2, options(hub->target), late.params, late.grads);
  EXPECT_EQ(opt2.epoch(), 3u);
  EXPECT_EQ(late.params, first.params);
}

TEST(CollaborativeOptimizer, LocalUpdateModeConverges) {
  auto hub = std::make_shared<FakeHub>();
  hub->target = 1;
  hub->group_wait = std::chrono::milliseconds(300);
  std::vector<std::unique_ptr<Peer>> peers;
  for (int p = 0; p < 2; ++p) peers.push_back(std::make_unique<Peer>(300 + p));
  const double before = peers[0]->distance();
  // Both peers are in the swarm from the start: otherwise a thread scheduled
  // late finds the other done and trains alone (a different test).
  for (int p = 0; p < 2; ++p) hub->report("peer" + std::to_string(p), PeerProgress{});
  std::vector<std::thread> threads;
  std::vector<std::uint64_t> outer_steps(2);
  for (int p = 0; p < 2; ++p) {
    threads.emplace_back([&, p] {
      auto swarm = std::make_shared<FakeSwarm>(hub, "peer" + std::to_string(p));
      auto opts = options(1);
      opts.load_state_on_start = false;
      opts.config.averaging.mode = AveragingMode::local_updates;
      opts.config.averaging.local_steps = 10;
      opts.config.averaging.outer_lr = 0.7;
      opts.config.averaging.outer_momentum = 0.9;
      CollaborativeOptimizer opt(swarm, opts, peers[p]->params, peers[p]->grads);
      for (int i = 0; i < 100; ++i) {
        peers[p]->compute_gradients(16);
        opt.step(16);
      }
      outer_steps[p] = opt.epoch();
    });
  }
  for (auto& t : threads) t.join();
  // At least one outer step per 10 inner steps: a peer whose round the other
  // released ends its inner phase then.
  EXPECT_GE(outer_steps[0], 10u);
  EXPECT_LE(outer_steps[0], 20u);
  EXPECT_LT(peers[0]->distance(), 0.1 * before);
}

// ---- Overlap: the previous epoch's average is applied while the next travels.

namespace {

CollaborativeOptions overlap_options(std::uint64_t target) {
  auto o = options(target);
  o.load_state_on_start = false;
  o.config.averaging.overlap = true;
  return o;
}

}  // namespace

TEST(CollaborativeOptimizerOverlap, PeersHoldIdenticalParameters) {
  auto hub = std::make_shared<FakeHub>();
  hub->target = 192;
  constexpr int kPeers = 3, kEpochs = 6;
  auto peers = make_peers(kPeers, 100);
  const double start_distance = peers[0]->distance();
  const auto history = train_together(hub, peers, overlap_options(hub->target), kEpochs);
  for (int p = 0; p < kPeers; ++p) {
    ASSERT_FALSE(history[p].empty()) << p;
    // The first boundary has nothing to apply; later ones apply the epoch before.
    const RoundReport& first = history[p].begin()->second.round;
    EXPECT_TRUE(first.overlapped) << p;
    EXPECT_FALSE(first.applied) << p;
    EXPECT_EQ(first.communication_blocked_seconds, 0.0) << "nothing to wait for";
    for (const auto& [epoch, record] : history[p]) {
      if (record.round.applied) {
        EXPECT_EQ(record.round.applied_epoch + 1, record.round.epoch) << "peer " << p;
      }
    }
  }
  EXPECT_GE(compare_full_group_epochs(history, true), kEpochs - 3)
      << "too few epochs averaged by the whole group";
  EXPECT_LT(peers[0]->distance(), 0.5 * start_distance) << "training did not make progress";
}

TEST(CollaborativeOptimizerOverlap, TrainingContinuesWhileTheAverageTravels) {
  auto hub = std::make_shared<FakeHub>();
  hub->target = 128;
  hub->clock = [] { return 1000.0; };  // frozen: epochs end on exact sample counts
  hub->hold_rounds();                  // the network is "slow" until the test says otherwise
  constexpr int kPeers = 2, kStepsWhileHeld = 3;
  std::vector<std::unique_ptr<Peer>> peers;
  for (int p = 0; p < kPeers; ++p) peers.push_back(std::make_unique<Peer>(400 + p));
  std::atomic<int> done_while_held{0};
  std::atomic<bool> released{false};
  std::vector<std::size_t> completed_at_boundary(kPeers, 99), completed_after_steps(kPeers, 99);
  std::vector<int> steps_returned_false(kPeers, 0);
  std::vector<bool> in_flight_after_boundary(kPeers), in_flight_after_steps(kPeers);
  std::vector<RoundReport> second(kPeers);
  std::vector<std::vector<float>> agreed(kPeers);
  std::vector<std::thread> threads;
  for (int p = 0; p < kPeers; ++p) {
    threads.emplace_back([&, p] {
      auto swarm = std::make_shared<FakeSwarm>(hub, "peer" + std::to_string(p));
      auto opts = overlap_options(hub->target);
      opts.clock = hub->clock;
      CollaborativeOptimizer opt(swarm, opts, peers[p]->params, peers[p]->grads);
      // Epoch 0 ends: its round starts and cannot finish while held.
      for (int i = 0; i < 200 && opt.epoch() < 1; ++i) {
        peers[p]->compute_gradients(16);
        opt.step(16);
      }
      completed_at_boundary[p] = hub->rounds_completed();
      in_flight_after_boundary[p] = opt.round_in_flight();
      // More compute while the average is still held back.
      for (int i = 0; i < kStepsWhileHeld; ++i) {
        peers[p]->compute_gradients(8);
        steps_returned_false[p] += !opt.step(8);
      }
      completed_after_steps[p] = hub->rounds_completed();
      in_flight_after_steps[p] = opt.round_in_flight();
      ++done_while_held;
      for (int i = 0; i < 2000 && !released; ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
      // Epoch 1 ends: the average of epoch 0 is applied.
      for (int i = 0; i < 200 && opt.epoch() < 2; ++i) {
        peers[p]->compute_gradients(16);
        opt.step(16);
      }
      second[p] = opt.last_round();
      agreed[p] = opt.snapshot().tensors[0];
    });
  }
  for (int i = 0; i < 2000 && done_while_held < kPeers; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  // Each round reaches the hub from its peer's worker thread, which a loaded
  // machine may not have scheduled yet: wait for it (bounded) while still held.
  for (int i = 0; i < 2000 && hub->rounds_started() < static_cast<std::size_t>(kPeers); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  const std::size_t started_while_held = hub->rounds_started();
  released = true;
  hub->release_rounds();
  for (auto& t : threads) t.join();

  EXPECT_EQ(started_while_held, static_cast<std::size_t>(kPeers)) << "both rounds were travelling";
  for (int p = 0; p < kPeers; ++p) {
    EXPECT_EQ(completed_at_boundary[p], 0u) << "step() returned before the average: " << p;
    EXPECT_EQ(completed_after_steps[p], 0u) << p;
    EXPECT_TRUE(in_flight_after_boundary[p]) << p;
    EXPECT_TRUE(in_flight_after_steps[p]) << p;
    EXPECT_EQ(steps_returned_false[p], kStepsWhileHeld) << p;
    EXPECT_TRUE(second[p].applied) << p;
    EXPECT_EQ(second[p].applied_epoch, 0u) << p;
    EXPECT_TRUE(second[p].averaged) << p;
    EXPECT_EQ(second[p].gradients.group_size, static_cast<std::size_t>(kPeers)) << p;
  }
  EXPECT_EQ(agreed[0], agreed[1]) << "the same average applied on both";
}

TEST(CollaborativeOptimizerOverlap, FailedRoundFallsBackToThatEpochsLocalGradients) {
  auto hub = std::make_shared<FakeHub>();
  hub->target = 64;
  hub->fail_averaging = true;
  Peer peer(9);
  auto swarm = std::make_shared<FakeSwarm>(hub, "alone");
  auto opts = overlap_options(hub->target);  // sgd, lr 0.1, no momentum
  CollaborativeOptimizer opt(swarm, opts, peer.params, peer.grads);
  // Epoch 0: remember this peer's mean gradient.
  std::vector<double> sum(kDim, 0.0);
  std::size_t samples = 0;
  for (int i = 0; i < 100 && opt.epoch() < 1; ++i) {
    peer.compute_gradients(16);
    for (std::size_t k = 0; k < kDim; ++k) sum[k] += 16.0 * peer.grads[k];
    samples += 16;
    opt.step(16);
  }
  ASSERT_EQ(opt.epoch(), 1u);
  EXPECT_FALSE(opt.last_round().applied);
  std::vector<float> local_step(kDim);
  for (std::size_t k = 0; k < kDim; ++k)
    local_step[k] = static_cast<float>(-0.1 * sum[k] / static_cast<double>(samples));
  EXPECT_EQ(opt.snapshot().tensors[0], std::vector<float>(kDim, 0.0f))
      << "no agreed step at the first boundary";
  for (std::size_t k = 0; k < kDim; ++k)
    EXPECT_NEAR(peer.params[k], local_step[k], 1e-5) << "the live guess takes the local step";
  for (int i = 0; i < 100 && opt.epoch() < 2; ++i) {
    peer.compute_gradients(16);
    opt.step(16);
  }
  ASSERT_EQ(opt.epoch(), 2u);
  const auto& round = opt.last_round();
  EXPECT_TRUE(round.applied);
  EXPECT_EQ(round.applied_epoch, 0u);
  EXPECT_FALSE(round.averaged);
  EXPECT_FALSE(round.state_averaged);
  EXPECT_EQ(round.gradients.error, "injected failure");
  EXPECT_EQ(opt.failed_rounds(), 1u);
  const auto agreed = opt.snapshot().tensors[0];
  for (std::size_t k = 0; k < kDim; ++k) EXPECT_NEAR(agreed[k], local_step[k], 1e-5) << k;
  const double before = peer.distance();
  for (int i = 0; i < 200 && opt.epoch() < 6; ++i) {
    peer.compute_gradients(16);
    opt.step(16);
  }
  EXPECT_EQ(opt.failed_rounds(), 5u);
  EXPECT_LT(peer.distance(), before);
}

TEST(CollaborativeOptimizerOverlap, ShutdownAndStateLoadWithARoundInFlight) {
  auto hub = std::make_shared<FakeHub>();
  hub->target = 32;
  hub->group_wait = std::chrono::milliseconds(100);
  Peer peer(11);
  auto swarm = std::make_shared<FakeSwarm>(hub, "alone");
  {
    CollaborativeOptimizer opt(swarm, overlap_options(hub->target), peer.params, peer.grads);
    for (int i = 0; i < 100 && opt.epoch() < 1; ++i) {
      peer.compute_gradients(16);
      opt.step(16);
    }
    ASSERT_TRUE(opt.round_in_flight());
    // A state loaded now makes the round in flight belong to the past.
    opt.restore(opt.snapshot());
    for (int i = 0; i < 100 && opt.epoch() < 2; ++i) {
      peer.compute_gradients(16);
      opt.step(16);
    }
    EXPECT_FALSE(opt.last_round().applied) << "the round from before the restore was dropped";
    // finish_overlap() applies the round in flight (alone: its local gradients)
    // and leaves the agreed parameters in the live buffers.
    const auto agreed_before = opt.snapshot().tensors[0];
    EXPECT_TRUE(opt.finish_overlap());
    EXPECT_FALSE(opt.round_in_flight());
    EXPECT_NE(opt.snapshot().tensors[0], agreed_before);
    EXPECT_EQ(peer.params, opt.snapshot().tensors[0]);
    EXPECT_EQ(opt.last_round().applied_epoch, 1u);
    // Epoch 2 ends; the optimizer is destroyed with its round still travelling.
    for (int i = 0; i < 100 && opt.epoch() < 3; ++i) {
      peer.compute_gradients(16);
      opt.step(16);
    }
    EXPECT_TRUE(opt.round_in_flight());
  }
  // The destructor waited for the round (it ended by its group wait) before returning.
  EXPECT_EQ(hub->rounds_started(), hub->rounds_completed());
}

TEST(CollaborativeOptimizer, ReportsTimeBlockedOnCommunication) {
  auto hub = std::make_shared<FakeHub>();
  hub->target = 32;
  hub->round_delay = std::chrono::milliseconds(50);
  Peer peer(13);
  auto swarm = std::make_shared<FakeSwarm>(hub, "alone");
  auto opts = options(hub->target);
  opts.load_state_on_start = false;
  CollaborativeOptimizer opt(swarm, opts, peer.params, peer.grads);
  for (int i = 0; i < 100 && opt.epoch() < 2; ++i) {
    peer.compute_gradients(16);
    opt.step(16);
  }
  // Without overlap each boundary waits for two rounds (gradients, then state).
  EXPECT_FALSE(opt.last_round().overlapped);
  EXPECT_GE(opt.last_round().communication_blocked_seconds, 0.1);
  EXPECT_GE(opt.communication_blocked_seconds(), 2 * 0.1);
}

// Matching ahead of time: a peer whose own view of the swarm is behind (it
// sees only its own samples) still ends its epoch as soon as another peer has
// started the round — the swarm closes an epoch on the leader's view instead
// of each peer overshooting the target until its own view catches up.
TEST(CollaborativeOptimizer, FollowerEndsItsEpochWhenTheRoundStarts) {
  auto hub = std::make_shared<FakeHub>();
  hub->target = 100;
  hub->isolated_estimates = true;
  hub->group_wait = std::chrono::milliseconds(5000);
  auto opts = options(hub->target);
  opts.load_state_on_start = false;
  opts.config.averaging.average_state_every = 1000;  // gradient rounds only
  Peer leader_model(31), follower_model(32);
  auto leader_swarm = std::make_shared<FakeSwarm>(hub, "leader");
  auto follower_swarm = std::make_shared<FakeSwarm>(hub, "follower");
  CollaborativeOptimizer leader(leader_swarm, opts, leader_model.params, leader_model.grads);
  CollaborativeOptimizer follower(follower_swarm, opts, follower_model.params,
                                  follower_model.grads);
  follower_model.compute_gradients(10);
  EXPECT_FALSE(follower.step(10));  // 10 of 100 samples in its view; the round is prepared
  EXPECT_GE(hub->prepare_calls(), 1u);

  std::thread leader_thread([&] {
    for (int i = 0; i < 2; ++i) {  // 2 × 50: its own view reaches the target
      leader_model.compute_gradients(50);
      leader.step(50);
    }
  });
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (hub->rounds_started() == 0 && std::chrono::steady_clock::now() < give_up)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  ASSERT_EQ(hub->rounds_started(), 1u) << "the leader never started its round";
  follower_model.compute_gradients(10);
  const bool ended = follower.step(10);  // 20 samples in its own view, far from 100
  leader_thread.join();
  EXPECT_TRUE(ended);
  EXPECT_EQ(follower.epoch(), 1u);
  EXPECT_EQ(leader.epoch(), 1u);
  // The round had started before this batch was handed over: it opens epoch 1.
  EXPECT_EQ(follower.last_round().local_samples, 10u);
  EXPECT_EQ(follower.local_samples(), 10u);
  EXPECT_TRUE(follower.last_round().averaged);
  EXPECT_TRUE(leader.last_round().averaged);
  EXPECT_EQ(hash_of(leader_model.params), hash_of(follower_model.params));
}

// A state download moves a peer past the epoch it matched ahead for: the
// groups it prepared are abandoned (a held group would keep its members waiting).
TEST(CollaborativeOptimizer, LoadingStateAbandonsRoundsMatchedAhead) {
  auto hub = std::make_shared<FakeHub>();
  hub->target = 100;
  auto opts = options(hub->target);
  opts.load_state_on_start = false;
  Peer model(33);
  auto swarm = std::make_shared<FakeSwarm>(hub, "peer");
  CollaborativeOptimizer opt(swarm, opts, model.params, model.grads);
  model.compute_gradients(10);
  opt.step(10);
  ASSERT_GE(hub->prepare_calls(), 1u);
  StateSnapshot ahead = opt.snapshot();
  ahead.epoch = 7;
  opt.restore(ahead);
  EXPECT_EQ(opt.epoch(), 7u);
  EXPECT_GE(hub->abandoned(), 1u);
}

// A batch computed while the others completed the epoch opens the next one:
// the epoch is the target batch (not target + one batch per late peer), and
// the late batch's gradients are those of the next epoch's step.
TEST(CollaborativeOptimizer, LateBatchOpensTheNextEpoch) {
  auto hub = std::make_shared<FakeHub>();
  hub->target = 20;
  hub->clock = [] { return 1000.0; };  // frozen: estimates are exactly the samples reported
  hub->group_wait = std::chrono::milliseconds(5000);
  auto opts = options(hub->target);
  opts.clock = hub->clock;
  opts.load_state_on_start = false;
  opts.config.averaging.average_state_every = 1000;  // gradient rounds only
  Peer a_model(41), b_model(42);
  CollaborativeOptimizer a(std::make_shared<FakeSwarm>(hub, "a"), opts, a_model.params,
                           a_model.grads);
  CollaborativeOptimizer b(std::make_shared<FakeSwarm>(hub, "b"), opts, b_model.params,
                           b_model.grads);
  a_model.compute_gradients(10);
  EXPECT_FALSE(a.step(10));       // 10 of 20
  a_model.compute_gradients(10);  // computing while b completes the epoch
  const std::vector<float> a_late = a_model.grads;

  b_model.compute_gradients(10);
  std::thread b_thread([&] { EXPECT_TRUE(b.step(10)); });  // 20 of 20: waits in the round for a
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (hub->rounds_started() == 0 && std::chrono::steady_clock::now() < give_up)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  EXPECT_TRUE(a.step(10));  // the epoch was complete before this batch
  b_thread.join();
  EXPECT_EQ(a.epoch(), 1u);
  EXPECT_EQ(b.epoch(), 1u);
  EXPECT_EQ(a.last_round().local_samples, 10u);
  EXPECT_EQ(b.last_round().local_samples, 10u);
  EXPECT_EQ(a.local_samples(), 10u);  // the late batch, in epoch 1
  ASSERT_EQ(hash_of(a_model.params), hash_of(b_model.params));

  // Epoch 1: a's late batch and one batch of b, averaged (SGD, lr 0.1, no momentum).
  const std::vector<float> before = a_model.params;
  b_model.compute_gradients(10);
  const std::vector<float> b_grads = b_model.grads;
  std::thread b_next([&] { EXPECT_TRUE(b.step(10)); });
  a_model.compute_gradients(10);  // again late: it will open epoch 2
  while (hub->rounds_started() < 3 && std::chrono::steady_clock::now() < give_up)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  EXPECT_TRUE(a.step(10));
  b_next.join();
  ASSERT_TRUE(a.last_round().averaged);
  EXPECT_EQ(a.last_round().local_samples, 10u);
  for (std::size_t i = 0; i < kDim; ++i) {
    const float expected = before[i] - 0.1f * 0.5f * (a_late[i] + b_grads[i]);
    EXPECT_NEAR(a_model.params[i], expected, 1e-5f) << i;
  }
  EXPECT_EQ(hash_of(a_model.params), hash_of(b_model.params));
}

// A downloaded (or resumed) state with a non-finite value is refused before it
// replaces anything: parameters, statistics and epoch stay as they were.
TEST(CollaborativeOptimizer, RestoreRefusesNonFiniteState) {
  auto hub = std::make_shared<FakeHub>();
  hub->target = 16;
  auto opts = options(hub->target);
  opts.load_state_on_start = false;
  Peer model(51);
  CollaborativeOptimizer opt(std::make_shared<FakeSwarm>(hub, "p"), opts, model.params,
                             model.grads);
  StateSnapshot poisoned = opt.snapshot();
  poisoned.epoch = 1000;
  poisoned.tensors[0].assign(kDim, std::numeric_limits<float>::quiet_NaN());
  const auto before = model.params;
  EXPECT_THROW(opt.restore(poisoned), apiary::Error);
  EXPECT_EQ(opt.epoch(), 0u);
  EXPECT_EQ(model.params, before);
}
