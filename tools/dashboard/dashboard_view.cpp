#include "tools/dashboard/dashboard_view.hpp"

#include "optimizer/config_names.hpp"
#include "tools/progress_printer.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>

namespace apiary::tools {
namespace {

using optimizer::PeerProgress;

nlohmann::json number_or_null(std::optional<double> value) {
  if (!value || !std::isfinite(*value)) return nullptr;
  return *value;
}

nlohmann::json known_or_null(double value) {  // the reports' -1 means "unknown"
  return value < 0 || !std::isfinite(value) ? nlohmann::json(nullptr) : nlohmann::json(value);
}

}  // namespace

bool is_live(const PeerProgress& r, double now, double live_seconds) {
  return now - r.report_time <= live_seconds;
}

HistoryPoint swarm_point(const std::vector<PeerProgress>& reports,
                         const optimizer::GlobalProgress& global, double now, double live_seconds) {
  HistoryPoint p;
  p.time = now;
  p.epoch = global.global_epoch;
  double loss_sum = 0, round_sum = 0;
  int loss_n = 0, round_n = 0;
  for (const auto& r : reports) {
    if (!is_live(r, now, live_seconds)) continue;
    ++p.live_peers;
    p.samples_per_second += r.samples_per_second;
    p.rounds_failed += r.rounds_failed;
    p.test_accuracy = std::max(p.test_accuracy, r.test_accuracy);
    if (r.loss >= 0) loss_sum += r.loss, ++loss_n;
    if (r.round_seconds >= 0) round_sum += r.round_seconds, ++round_n;
  }
  if (loss_n) p.loss = loss_sum / loss_n;
  if (round_n) p.round_seconds = round_sum / round_n;
  return p;
}

std::optional<double> accuracy_eta(const std::vector<HistoryPoint>& history, double target,
                                   std::size_t window) {
  std::vector<const HistoryPoint*> points;
  for (auto it = history.rbegin(); it != history.rend() && points.size() < window; ++it)
    if (it->test_accuracy >= 0) points.push_back(&*it);
  if (points.empty()) return std::nullopt;
  const double latest = points.front()->test_accuracy;
  if (latest >= target) return 0.0;
  if (points.size() < 3) return std::nullopt;
  double mean_t = 0, mean_a = 0;
  for (const auto* p : points) mean_t += p->time, mean_a += p->test_accuracy;
  mean_t /= points.size();
  mean_a /= points.size();
  double covariance = 0, variance = 0;
  for (const auto* p : points) {
    covariance += (p->time - mean_t) * (p->test_accuracy - mean_a);
    variance += (p->time - mean_t) * (p->time - mean_t);
  }
  if (variance <= 0 || covariance <= 0) return std::nullopt;
  return (target - latest) / (covariance / variance);
}

std::string peer_mode(const PeerProgress& report) {
  return report.client_mode ? "client" : "public";
}

DashboardView::DashboardView(DashboardRun run, RunHistory history, double live_seconds)
    : run_(std::move(run)),
      config_json_(nlohmann::json::parse(run_.config.to_json())),
      live_seconds_(live_seconds),
      history_(std::move(history)) {
  run_json_ = make_run_json({}, HistoryPoint{}, 0);
  history_json_ = make_history_json();
}

void DashboardView::update(const std::vector<PeerProgress>& reports,
                           const optimizer::GlobalProgress& global, double now) {
  const HistoryPoint point = swarm_point(reports, global, now, live_seconds_);
  std::string peers = make_peers_json(reports, now);
  std::lock_guard lock(mutex_);
  history_.add(point);
  run_json_ = make_run_json(global, point, now);
  peers_json_ = std::move(peers);
  history_json_ = make_history_json();
}

std::string DashboardView::make_run_json(const optimizer::GlobalProgress& global,
                                         const HistoryPoint& swarm, double now) const {
  const auto& c = run_.config;
  const std::optional<double> epoch_eta = seconds_to_next_epoch(
      static_cast<double>(c.target_batch_size), global.estimated_samples, swarm.samples_per_second);
  std::optional<double> target_eta;
  if (run_.target_accuracy) target_eta = accuracy_eta(history_.points(), *run_.target_accuracy);
  nlohmann::json out{
      {"run", c.run},
      {"address", run_.address},
      {"config", config_json_},
      {"model", c.model.type},
      {"model_parameters",
       run_.model_parameters ? nlohmann::json(*run_.model_parameters) : nlohmann::json(nullptr)},
      {"target_batch_size", c.target_batch_size},
      {"compression",
       {{"gradients", std::string(optimizer::name_of(c.compression.gradients))},
        {"state", std::string(optimizer::name_of(c.compression.state))}}},
      // The one aggregation there is today: the mean weighted by samples.
      {"aggregation", "weighted mean"},
      {"averaging_mode", std::string(optimizer::name_of(c.averaging.mode))},
      {"time", now},
      {"epoch", global.global_epoch},
      {"live_peers", swarm.live_peers},
      {"samples_per_s", swarm.samples_per_second},
      {"samples_this_epoch", global.estimated_samples},
      {"eta_next_epoch_s", number_or_null(epoch_eta)},
      {"target_accuracy", number_or_null(run_.target_accuracy)},
      {"eta_target_accuracy_s", number_or_null(target_eta)}};
  return out.dump();
}

std::string DashboardView::make_peers_json(const std::vector<PeerProgress>& reports,
                                           double now) const {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& r : reports) {
    out.push_back({{"peer", r.peer},
                   {"mode", peer_mode(r)},
                   {"epoch", r.epoch},
                   {"samples_per_s", r.samples_per_second},
                   {"last_seen_s", std::max(0.0, now - r.report_time)},
                   {"live", is_live(r, now, live_seconds_)},
                   {"loss", known_or_null(r.loss)},
                   {"test_accuracy", known_or_null(r.test_accuracy)},
                   {"rounds_averaged", r.rounds_averaged},
                   {"rounds_failed", r.rounds_failed},
                   {"bytes_sent", r.bytes_sent},
                   {"bytes_received", r.bytes_received},
                   {"round_s", known_or_null(r.round_seconds)}});
  }
  return out.dump();
}

std::string DashboardView::make_history_json() const {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& p : history_.points()) out.push_back(to_json(p));
  return out.dump();
}

std::string DashboardView::run_json() const {
  std::lock_guard lock(mutex_);
  return run_json_;
}

std::string DashboardView::peers_json() const {
  std::lock_guard lock(mutex_);
  return peers_json_;
}

std::string DashboardView::history_json() const {
  std::lock_guard lock(mutex_);
  return history_json_;
}

std::size_t DashboardView::history_size() const {
  std::lock_guard lock(mutex_);
  return history_.points().size();
}

}  // namespace apiary::tools
