#pragma once
// RunHistory: the swarm's state over a whole run, one point per coordinator
// status period, for the dashboard's charts.
//
// Memory is bounded: past `max_points` the series is thinned (every other
// point dropped), so a long run keeps its whole span at a coarser resolution.
// With a file (the run directory's history.jsonl) every point is appended as
// one JSON line and a thinned series is rewritten atomically, so a restarted
// coordinator continues the charts where they stopped. A torn or foreign line
// (a crash mid-write, a hand edit) is skipped on load, never fatal.
// Threading: not thread-safe (DashboardView locks around it).
// Errors: file trouble is logged; the history keeps working in memory.
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace apiary::tools {

struct HistoryPoint {
  double time = 0;  // Unix seconds
  std::uint64_t epoch = 0;
  std::size_t live_peers = 0;
  double samples_per_second = 0;    // summed over the live peers' reports
  double loss = -1;                 // mean of the peers' smoothed losses (-1: none reported)
  double test_accuracy = -1;        // best reported (-1: none)
  double round_seconds = -1;        // mean averaging round time over the peers (-1: none yet)
  std::uint64_t rounds_failed = 0;  // summed over the live peers' reports
};

nlohmann::json to_json(const HistoryPoint& point);
// nullopt when `line` is not a history point.
std::optional<HistoryPoint> history_point_from_json(const nlohmann::json& line);

class RunHistory {
 public:
  explicit RunHistory(std::size_t max_points = 2048, std::filesystem::path file = {});

  void add(const HistoryPoint& point);
  const std::vector<HistoryPoint>& points() const noexcept { return points_; }
  // Points at or after `since` (Unix seconds).
  std::vector<HistoryPoint> since(double since) const;

 private:
  void thin();
  void load();
  void append_to_file(const HistoryPoint& point);
  void rewrite_file();

  std::size_t max_points_;
  std::filesystem::path file_;
  std::vector<HistoryPoint> points_;
};

}  // namespace apiary::tools
