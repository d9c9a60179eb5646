#include "averaging/state_vote.hpp"

#include "core/majority.hpp"

#include <algorithm>

namespace apiary::averaging {
DonorChoice choose_donors(std::span<const DonorAnswer> answers, const VoteRules& rules,
                          const DonorBans& bans) {
  DonorChoice out;
  std::vector<std::size_t> valid;  // one answer per identity, usable
  std::set<PeerId> voted;
  std::size_t answered = 0;
  for (std::size_t i = 0; i < answers.size(); ++i) {
    const DonorAnswer& a = answers[i];
    if (!a.meta) continue;
    ++answered;
    if (a.meta->epoch < rules.min_epoch || a.meta->epoch > rules.max_epoch ||
        bans.contains(a.address.peer) || !voted.insert(a.address.peer).second) {
      ++out.refused;
      continue;
    }
    if (!rules.expected_sizes.empty() && !std::ranges::equal(a.meta->sizes, rules.expected_sizes)) {
      out.banned.push_back(i);
      ++out.refused;
      continue;
    }
    valid.push_back(i);
  }
  if (valid.empty()) {
    out.refusal = answered == 0 ? "no donor answered"
                  : out.banned.empty()
                      ? "no donor has a state of an epoch in [" + std::to_string(rules.min_epoch) +
                            ", " +
                            (rules.max_epoch == std::numeric_limits<std::uint64_t>::max()
                                 ? std::string("any")
                                 : std::to_string(rules.max_epoch)) +
                            "] (" + std::to_string(answered) + " answered)"
                      : "no donor's state matches this run's model (" + std::to_string(answered) +
                            " refused)";
    return out;
  }
  std::vector<std::uint64_t> epochs;
  for (std::size_t i : valid) epochs.push_back(answers[i].meta->epoch);
  const std::uint64_t epoch = *majority_reached(std::move(epochs));

  // Content votes among the donors at exactly that epoch.
  std::vector<std::size_t> at_epoch;
  for (std::size_t i : valid)
    if (answers[i].meta->epoch == epoch) at_epoch.push_back(i);
  std::size_t best_votes = 0;
  for (std::size_t i : at_epoch) {
    std::size_t votes = 0;
    for (std::size_t j : at_epoch) votes += answers[j].meta->same_content(*answers[i].meta);
    if (votes > best_votes) {
      best_votes = votes;
      out.reference = i;
    }
  }
  const StateMeta& reference = *answers[*out.reference].meta;
  const bool majority = 2 * best_votes > at_epoch.size();
  for (std::size_t i : valid) {
    const StateMeta& meta = *answers[i].meta;
    if (meta.same_content(reference)) {
      out.chosen.push_back(i);
      continue;
    }
    ++out.refused;  // another epoch, or content the others contradict
    if (majority && meta.epoch == epoch) out.banned.push_back(i);
  }
  return out;
}

}  // namespace apiary::averaging
