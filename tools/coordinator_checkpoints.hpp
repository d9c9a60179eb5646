#pragma once
// The coordinator's checkpoints of the swarm's state (`--checkpoint-dir`):
// downloaded from the run's donors every `every` epochs through the same vote
// a joiner uses (averaging/state_vote.hpp), with the sizes of the last
// checkpoint as the run's model (the coordinator builds none) and no donor
// further ahead than the progress it last saw. Disk trouble and failed
// downloads are logged, never thrown: training goes on (see StateCheckpoints).
#include "averaging/state_vote.hpp"
#include "dht/runner.hpp"
#include "optimizer/state_checkpoints.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace apiary::tools {

class CoordinatorCheckpoints {
 public:
  CoordinatorCheckpoints(dht::DhtRunner& runner, const std::string& dir, const std::string& run,
                         const std::string& config_json, std::uint32_t every);
  // A new progress view: the swarm is at `epoch`; saves one when it is due.
  void on_progress(std::uint64_t epoch);
  // One last checkpoint on the way out.
  void save_now();

 private:
  dht::DhtRunner& runner_;
  std::string run_;
  std::uint32_t every_;
  optimizer::StateCheckpoints checkpoints_;
  std::vector<std::size_t> state_sizes_;  // of the last checkpoint (empty: none yet)
  averaging::DonorBans donor_bans_;       // donors caught lying; used on the runner's thread
  std::uint64_t vouched_epoch_ = 0;       // the swarm's epoch in the last progress view
  std::uint64_t next_epoch_ = 0;
};

}  // namespace apiary::tools
