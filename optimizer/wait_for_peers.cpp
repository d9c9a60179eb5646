// CollaborativeOptimizer::wait_for_peers: peers that start their clocks
// together, as DDP's rendezvous makes its ranks do. Without it the first peer
// of a new swarm trains alone while the others start (importing torch takes
// seconds), takes its first outer steps alone, and the others arrive behind it
// and load its state again and again (1–3 downloads per peer in the first 15 s
// of the 100 Mbit/s benchmark).
#include "optimizer/collaborative_optimizer.hpp"

#include <thread>

namespace apiary::optimizer {

std::size_t CollaborativeOptimizer::wait_for_peers(std::size_t count,
                                                   std::chrono::duration<double> timeout) {
  using Clock = std::chrono::steady_clock;
  const auto deadline = Clock::now() + timeout;
  report(true);  // the others wait for this peer too
  for (;;) {
    const std::size_t seen = swarm_->global_progress(epoch_).num_peers;
    if (seen >= count) return seen;
    if (Clock::now() >= deadline) return seen;  // the caller says what it does then
    report(false);
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

}  // namespace apiary::optimizer
