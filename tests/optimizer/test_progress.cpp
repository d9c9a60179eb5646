#include "optimizer/adaptive_deadline.hpp"
#include "optimizer/progress_estimate.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

using namespace apiary::optimizer;

TEST(ProgressEstimate, CountsOnlyPeersAtGlobalEpochAndExtrapolates) {
  std::vector<PeerProgress> reports = {
      {"a", 5, 100, 10.0, 100.0, false},
      {"b", 5, 200, 20.0, 101.0, false},
      {"c", 4, 999, 30.0, 101.0, false},  // behind: its samples belong to an old epoch
  };
  auto g = estimate_progress(reports, 4, 1000, 102.0);
  EXPECT_EQ(g.global_epoch, 5u);
  EXPECT_EQ(g.samples_accumulated, 300u);
  EXPECT_DOUBLE_EQ(g.estimated_samples, 100 + 2 * 10.0 + 200 + 1 * 20.0);
  EXPECT_DOUBLE_EQ(g.total_samples_per_second, 60.0);
  EXPECT_NEAR(g.eta, 102.0 + (1000 - 340) / 60.0, 1e-9);
  EXPECT_EQ(g.num_peers, 3u);
  EXPECT_FALSE(g.target_reached(1000));
  EXPECT_TRUE(g.target_reached(340));
}

// Reports of the epoch before travel late: a peer still reported at epoch 4
// (recently) most likely left round 4 together with this peer, so it counts
// from when this peer's epoch 5 began, at its throughput.
TEST(ProgressEstimate, RecentReportsOfThePreviousEpochCountFromTheEpochStart) {
  std::vector<PeerProgress> reports = {
      {"self", 5, 100, 10.0, 102.0, false},
      {"late", 4, 999, 20.0, 100.0, false},  // reported 2 s ago, before this epoch began
      {"stale", 4, 999, 40.0, 90.0, false},  // 12 s ago: not counted
  };
  const double epoch_began = 101.0;
  auto g = estimate_progress(reports, 5, 1000, 102.0, {}, epoch_began);
  EXPECT_EQ(g.global_epoch, 5u);
  EXPECT_DOUBLE_EQ(g.estimated_samples, 100 + 0 * 10.0 + (102.0 - epoch_began) * 20.0);
  EXPECT_EQ(g.samples_accumulated, 100u);  // reported figures only
  // Without knowing when this epoch began, the old report is not counted.
  EXPECT_DOUBLE_EQ(estimate_progress(reports, 5, 1000, 102.0).estimated_samples, 100.0);
  // A peer behind the global epoch does not count the others' old reports.
  auto ahead = reports;
  ahead.push_back({"other", 5, 100, 10.0, 102.0, false});
  const auto behind = estimate_progress(ahead, 4, 1000, 102.0, {}, epoch_began);
  EXPECT_EQ(behind.global_epoch, 5u);
  EXPECT_DOUBLE_EQ(behind.estimated_samples, 200.0);
  EXPECT_DOUBLE_EQ(g.seconds_to_target(), g.eta - 102.0);
}

// A peer two epochs behind with a recent report is stuck (a round that hangs
// on to its deadline, a state download), not in this epoch: counting its rate
// made two peers end epochs 8..24 on 64 samples each while the third was
// blocked in round 6 (CI, StateAttacks).
TEST(ProgressEstimate, APeerTwoEpochsBehindCountsNothing) {
  std::vector<PeerProgress> reports = {
      {"a", 8, 64, 2000.0, 102.0, false},
      {"b", 8, 64, 2000.0, 102.0, false},
      {"stuck", 6, 512, 60000.0, 100.0, false},  // reported 2 s ago, at epoch 6
  };
  const double epoch_began = 101.5;
  auto g = estimate_progress(reports, 8, 512, 102.0, {}, epoch_began);
  EXPECT_EQ(g.global_epoch, 8u);
  EXPECT_DOUBLE_EQ(g.estimated_samples, 128.0);
  EXPECT_FALSE(g.target_reached(512));
  // One epoch behind, the same report counts from the epoch's start (see above).
  reports[2].epoch = 7;
  EXPECT_DOUBLE_EQ(estimate_progress(reports, 8, 512, 102.0, {}, epoch_began).estimated_samples,
                   128.0 + 0.5 * 60000.0);
}

TEST(ProgressEstimate, ClientModePeersDoNotAdvanceEpoch) {
  std::vector<PeerProgress> reports = {{"a", 3, 10, 1.0, 0.0, false},
                                       {"client", 9, 10, 1.0, 0.0, true}};
  EXPECT_EQ(estimate_progress(reports, 2, 100, 0.0).global_epoch, 3u);
}

// Reports are strangers' claims: one claiming epoch 1000 among honest peers
// at epoch 5 moves nobody, and its samples count for nothing.
TEST(ProgressEstimate, AMinorityClaimingALaterEpochMovesNobody) {
  std::vector<PeerProgress> reports = {{"self", 5, 100, 10.0, 100.0, false},
                                       {"b", 5, 100, 10.0, 100.0, false},
                                       {"liar", 1000, 5000, 10.0, 100.0, false}};
  auto g = estimate_progress(reports, 5, 10000, 100.0);
  EXPECT_EQ(g.global_epoch, 5u);
  EXPECT_EQ(g.samples_accumulated, 200u);
  EXPECT_EQ(g.num_peers, 2u);
  // Alone against this peer it is a tie: one epoch ahead at most (a round
  // that just ended at the other peer), never 1000.
  std::vector<PeerProgress> pair = {reports[0], reports[2]};
  EXPECT_EQ(estimate_progress(pair, 5, 10000, 100.0).global_epoch, 6u);
  // …and a late joiner follows the majority, however far along it is.
  std::vector<PeerProgress> swarm = {{"self", 0, 0, 10.0, 100.0, false},
                                     {"b", 500, 10, 10.0, 100.0, false},
                                     {"c", 500, 10, 10.0, 100.0, false},
                                     {"liar", 100000, 10, 10.0, 100.0, false}};
  EXPECT_EQ(estimate_progress(swarm, 0, 1000, 100.0).global_epoch, 500u);
}

TEST(ProgressEstimate, ThroughputIsCappedAndImplausibleReportsIgnored) {
  ProgressOptions options;
  options.max_peer_samples_per_second = 1000;
  std::vector<PeerProgress> reports = {{"self", 2, 100, 50.0, 100.0, false},
                                       {"fast", 2, 100, 5000.0, 100.0, false},
                                       {"stuffed", 2, 2001, 50.0, 100.0, false},
                                       {"nan", 2, 10, std::nan(""), 100.0, false}};
  auto g = estimate_progress(reports, 2, 1000, 100.0, options);
  EXPECT_EQ(g.num_peers, 2u);
  EXPECT_EQ(g.samples_accumulated, 200u);
  EXPECT_DOUBLE_EQ(g.total_samples_per_second, 50.0 + 1000.0);  // "fast" counts as 1000/s
  EXPECT_FALSE(g.target_reached(1000));
  EXPECT_TRUE(plausible_report(reports[0], 1000));
  EXPECT_TRUE(plausible_report(reports[1], 1000));
  EXPECT_FALSE(plausible_report(reports[2], 1000));  // more than twice the target
  EXPECT_FALSE(plausible_report(reports[3], 1000));
}

TEST(ProgressEstimate, RefreshSoonerAsTargetNears) {
  std::vector<PeerProgress> far = {{"a", 0, 0, 10.0, 0.0, false}};
  std::vector<PeerProgress> near = {{"a", 0, 990, 10.0, 0.0, false}};
  auto g_far = estimate_progress(far, 0, 1000, 0.0);
  auto g_near = estimate_progress(near, 0, 1000, 0.0);
  EXPECT_DOUBLE_EQ(g_far.next_refresh, 10.0);  // clamped to max_refresh_period
  EXPECT_LT(g_near.next_refresh, g_far.next_refresh);
  EXPECT_GE(g_near.next_refresh, 0.5);  // min_refresh_period
  auto g_none = estimate_progress({}, 0, 1000, 7.0);
  EXPECT_DOUBLE_EQ(g_none.next_refresh, 10.0);  // default refresh 3 s
}

TEST(ThroughputEma, BiasCorrectedFromFirstSample) {
  ThroughputEma ema(0.1);
  EXPECT_EQ(ema.samples_per_second(), 0.0);
  ema.update(100, 1.0);
  EXPECT_DOUBLE_EQ(ema.samples_per_second(), 100.0);
  for (int i = 0; i < 100; ++i) ema.update(50, 1.0);
  EXPECT_NEAR(ema.samples_per_second(), 50.0, 0.01);
}

TEST(AdaptiveDeadline, FollowsMeasuredRoundsWithinBounds) {
  AdaptiveDeadline d({.initial_seconds = 15,
                      .min_seconds = 1,
                      .max_seconds = 60,
                      .safety_factor = 2,
                      .quantile = 0.9,
                      .window = 8});
  EXPECT_DOUBLE_EQ(d.next_seconds(), 15.0);
  for (int i = 0; i < 8; ++i) d.record_success(2.0);
  EXPECT_DOUBLE_EQ(d.next_seconds(), 4.0);
  for (int i = 0; i < 8; ++i) d.record_success(0.1);
  EXPECT_DOUBLE_EQ(d.next_seconds(), 1.0);  // min bound
  d.record_timeout();
  EXPECT_DOUBLE_EQ(d.next_seconds(), 2.0);
  for (int i = 0; i < 10; ++i) d.record_timeout();
  EXPECT_DOUBLE_EQ(d.next_seconds(), 60.0);  // max bound
  d.record_success(100.0);                   // a slow success
  EXPECT_DOUBLE_EQ(d.next_seconds(), 60.0);
}
