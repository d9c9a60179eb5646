// Which donors a state download trusts: one vote per identity, the epoch a
// majority reached, the content most donors at it announce, and bans for
// donors that lie about sizes or contradict a majority.
#include "averaging/state_vote.hpp"

#include <gtest/gtest.h>

namespace apiary::averaging {
namespace {

PeerId peer(std::uint8_t n) {
  PeerId id;
  id.bytes.fill(n);
  return id;
}

StateMeta meta(std::uint64_t epoch, std::uint8_t content = 0,
               std::vector<std::size_t> sizes = {100, 10}) {
  StateMeta m;
  m.epoch = epoch;
  m.metadata = Bytes{content};
  m.sizes = std::move(sizes);
  m.chunk_elements = 1u << 22;  // a few chunks even for the huge claims below
  m.hashes.assign(chunk_count(m.sizes, m.chunk_elements), hash256(Bytes{content}));
  return m;
}

DonorAnswer answer(std::uint8_t n, std::optional<StateMeta> m) {
  return {PeerAddress{peer(n), "127.0.0.1", static_cast<std::uint16_t>(1000 + n)}, std::move(m)};
}

VoteRules sized(std::span<const std::size_t> model) {
  VoteRules rules;
  rules.expected_sizes = model;
  return rules;
}

VoteRules epochs(std::uint64_t min, std::uint64_t max = std::numeric_limits<std::uint64_t>::max()) {
  VoteRules rules;
  rules.min_epoch = min;
  rules.max_epoch = max;
  return rules;
}

std::vector<std::size_t> sorted(std::vector<std::size_t> v) {
  std::sort(v.begin(), v.end());
  return v;
}

TEST(StateVote, AMinorityClaimingANewerEpochLoses) {
  // Two honest donors at epoch 10, one stranger claiming epoch 1000.
  const std::vector<DonorAnswer> answers{answer(1, meta(10)), answer(2, meta(1000, 9)),
                                         answer(3, meta(10))};
  const auto choice = choose_donors(answers, {}, {});
  ASSERT_TRUE(choice.reference);
  EXPECT_EQ(answers[*choice.reference].meta->epoch, 10u);
  EXPECT_EQ(sorted(choice.chosen), (std::vector<std::size_t>{0, 2}));
  EXPECT_EQ(choice.refused, 1u);
  EXPECT_TRUE(choice.banned.empty()) << "a newer epoch alone proves nothing: it may have stepped";
}

TEST(StateVote, TheEpochIsTheNewestAMajorityReached) {
  // Epochs 12, 11, 11, 10: more than half (3 of 4) reached 11, only 1 reached 12.
  const std::vector<DonorAnswer> answers{answer(1, meta(12)), answer(2, meta(11)),
                                         answer(3, meta(11)), answer(4, meta(10))};
  const auto choice = choose_donors(answers, {}, {});
  ASSERT_TRUE(choice.reference);
  EXPECT_EQ(answers[*choice.reference].meta->epoch, 11u);
  EXPECT_EQ(sorted(choice.chosen), (std::vector<std::size_t>{1, 2}));
  // A tie between two donors goes to the older epoch: neither vouches for the other.
  const std::vector<DonorAnswer> two{answer(1, meta(1000)), answer(2, meta(7))};
  const auto tie = choose_donors(two, {}, {});
  ASSERT_TRUE(tie.reference);
  EXPECT_EQ(two[*tie.reference].meta->epoch, 7u);
}

TEST(StateVote, AnIdentityVotesOnce) {
  // One stranger announced under three addresses, against two honest donors.
  std::vector<DonorAnswer> answers{answer(7, meta(1000, 9)), answer(1, meta(10)),
                                   answer(7, meta(1000, 9)), answer(2, meta(10)),
                                   answer(7, meta(1000, 9))};
  answers[2].address.port = 2;
  answers[4].address.port = 3;
  const auto choice = choose_donors(answers, {}, {});
  ASSERT_TRUE(choice.reference);
  EXPECT_EQ(answers[*choice.reference].meta->epoch, 10u);
  EXPECT_EQ(sorted(choice.chosen), (std::vector<std::size_t>{1, 3}));
}

TEST(StateVote, ContentAMajorityContradictsIsRefusedAndItsDonorBanned) {
  const std::vector<DonorAnswer> answers{answer(1, meta(10, 0)), answer(2, meta(10, 5)),
                                         answer(3, meta(10, 0)), answer(4, meta(9, 3))};
  const auto choice = choose_donors(answers, {}, {});
  ASSERT_TRUE(choice.reference);
  EXPECT_EQ(answers[*choice.reference].meta->metadata, Bytes{0});
  EXPECT_EQ(sorted(choice.chosen), (std::vector<std::size_t>{0, 2}));
  EXPECT_EQ(choice.banned, (std::vector<std::size_t>{1}));  // not the older donor
  EXPECT_EQ(choice.refused, 2u);
}

TEST(StateVote, WithoutAMajorityThePluralityWinsAndNobodyIsBanned) {
  // Honest donors of different averaging groups may hold different states.
  const std::vector<DonorAnswer> answers{answer(1, meta(10, 1)), answer(2, meta(10, 2)),
                                         answer(3, meta(10, 2)), answer(4, meta(10, 3))};
  const auto choice = choose_donors(answers, {}, {});
  ASSERT_TRUE(choice.reference);
  EXPECT_EQ(answers[*choice.reference].meta->metadata, Bytes{2});
  EXPECT_EQ(sorted(choice.chosen), (std::vector<std::size_t>{1, 2}));
  EXPECT_TRUE(choice.banned.empty());
}

TEST(StateVote, SizesOtherThanTheModelsAreRefusedBeforeAnythingElseAndBanned) {
  const std::vector<std::size_t> model{100, 10};
  // The stranger claims a huge state: it must not even take part in the vote.
  const std::vector<DonorAnswer> answers{answer(1, meta(1000, 9, {1u << 30})), answer(2, meta(10)),
                                         answer(3, meta(1000, 9, {1u << 30}))};
  const auto choice = choose_donors(answers, sized(model), {});
  ASSERT_TRUE(choice.reference);
  EXPECT_EQ(*choice.reference, 1u);
  EXPECT_EQ(choice.chosen, (std::vector<std::size_t>{1}));
  EXPECT_EQ(sorted(choice.banned), (std::vector<std::size_t>{0, 2}));
  const std::vector<DonorAnswer> only_wrong{answer(1, meta(3, 0, {5}))};
  const auto none = choose_donors(only_wrong, sized(model), {});
  EXPECT_FALSE(none.reference);
  EXPECT_NE(none.refusal.find("matches this run's model"), std::string::npos) << none.refusal;
}

TEST(StateVote, DonorsOutsideTheEpochsTheCallerExpectsDoNotVote) {
  // Wanting epoch 9: the stale donor (epoch 4) would otherwise win the 1:1 tie.
  const std::vector<DonorAnswer> answers{answer(1, meta(4)), answer(2, meta(9))};
  const auto choice = choose_donors(answers, epochs(9), {});
  ASSERT_TRUE(choice.reference);
  EXPECT_EQ(*choice.reference, 1u);
  EXPECT_EQ(choice.refused, 1u);
  EXPECT_TRUE(choice.banned.empty());
  const auto none = choose_donors(answers, epochs(10), {});
  EXPECT_FALSE(none.reference);
  EXPECT_NE(none.refusal.find("epoch in [10, any]"), std::string::npos) << none.refusal;
  // Newer than the swarm's progress vouches for: not a vote either.
  const auto capped = choose_donors(answers, epochs(0, 5), {});
  ASSERT_TRUE(capped.reference);
  EXPECT_EQ(*capped.reference, 0u);
}

TEST(StateVote, BannedDonorsAreNotAsked) {
  DonorBans bans{peer(7)};
  const std::vector<DonorAnswer> answers{answer(7, meta(1000, 9)), answer(1, meta(10))};
  const auto choice = choose_donors(answers, {}, bans);
  ASSERT_TRUE(choice.reference);
  EXPECT_EQ(*choice.reference, 1u);
  EXPECT_EQ(choice.refused, 1u);
}

TEST(StateVote, ALoneDonorIsTakenAndNoAnswerIsARefusal) {
  const std::vector<DonorAnswer> alone{answer(1, std::nullopt), answer(2, meta(4))};
  const auto choice = choose_donors(alone, {}, {});
  ASSERT_TRUE(choice.reference);
  EXPECT_EQ(*choice.reference, 1u);
  const std::vector<DonorAnswer> silent{answer(1, std::nullopt)};
  const auto none = choose_donors(silent, {}, {});
  EXPECT_FALSE(none.reference);
  EXPECT_EQ(none.refusal, "no donor answered");
}

}  // namespace
}  // namespace apiary::averaging
