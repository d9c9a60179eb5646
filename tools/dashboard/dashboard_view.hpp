#pragma once
// DashboardView: what the coordinator's dashboard shows, as the JSON its
// /api routes answer with — the run (configuration, model size, target batch,
// compression, aggregation), the swarm now (epoch, samples/s, ETAs), the peers,
// and the RunHistory behind the charts.
//
// The coordinator feeds it one update() per status period (the same progress
// reports `apiary status` reads from the DHT); HTTP threads only read the
// JSON it prepared then, so an API call costs a copy of a string, whatever
// the number of peers.
// ETAs: to the next epoch, the samples left over the swarm's throughput; to
// the target accuracy, the least-squares slope of test accuracy over the last
// points of the history (none while accuracy is not rising).
// Threading: update() and the *_json() accessors may run on different threads.
// Errors: none thrown; unknown figures are JSON null.
#include "optimizer/progress_estimate.hpp"
#include "optimizer/run_config.hpp"
#include "tools/dashboard/run_history.hpp"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace apiary::tools {

struct DashboardRun {
  optimizer::RunConfig config;
  std::string address;                            // the coordinator's, to join through
  std::optional<std::uint64_t> model_parameters;  // unknown for models it cannot build
  std::optional<double> target_accuracy;          // for the ETA (coordinator --target-accuracy)
};

// Seconds until test accuracy reaches `target`, extrapolating the last
// `window` points of `history` that report one; nullopt while it is not rising.
std::optional<double> accuracy_eta(const std::vector<HistoryPoint>& history, double target,
                                   std::size_t window = 20);

// A peer whose last report is older than `live_seconds` has probably left.
bool is_live(const optimizer::PeerProgress& report, double now, double live_seconds);

// The swarm at `now` as the live reports tell it: their summed samples/s,
// mean loss and round time, best accuracy, and the estimate's epoch.
HistoryPoint swarm_point(const std::vector<optimizer::PeerProgress>& reports,
                         const optimizer::GlobalProgress& global, double now, double live_seconds);

// "public" or "client" (client mode: it accepts no connections).
std::string peer_mode(const optimizer::PeerProgress& report);

class DashboardView {
 public:
  DashboardView(DashboardRun run, RunHistory history, double live_seconds = 15);

  // One status period: every report the DHT holds (stale ones included) and
  // the swarm's estimate, at Unix time `now`. Adds a history point.
  void update(const std::vector<optimizer::PeerProgress>& reports,
              const optimizer::GlobalProgress& global, double now);

  std::string run_json() const;      // /api/run
  std::string peers_json() const;    // /api/peers
  std::string history_json() const;  // /api/history
  std::size_t history_size() const;

 private:
  std::string make_run_json(const optimizer::GlobalProgress& global, const HistoryPoint& swarm,
                            double now) const;
  std::string make_peers_json(const std::vector<optimizer::PeerProgress>& reports,
                              double now) const;
  std::string make_history_json() const;

  DashboardRun run_;
  nlohmann::json config_json_;  // run_.config, made once: it does not change
  double live_seconds_;
  mutable std::mutex mutex_;
  RunHistory history_;
  std::string run_json_;
  std::string peers_json_ = "[]";
  std::string history_json_;
};

}  // namespace apiary::tools
