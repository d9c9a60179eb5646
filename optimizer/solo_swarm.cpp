#include "optimizer/solo_swarm.hpp"

#include "optimizer/progress_estimate.hpp"

namespace apiary::optimizer {

void SoloSwarm::report_progress(const PeerProgress& local) {
  last_ = local;
}

GlobalProgress SoloSwarm::global_progress(std::uint64_t local_epoch) {
  std::vector<PeerProgress> reports{last_};
  return estimate_progress(reports, local_epoch, target_batch_size_, last_.report_time);
}

AveragingOutcome SoloSwarm::average(const std::string&, std::vector<std::span<float>>, float,
                                    std::chrono::duration<double>, RoundKind) {
  AveragingOutcome out;
  out.ok = true;  // a group of one: the local values are the average
  out.group_size = 1;
  return out;
}

}  // namespace apiary::optimizer
