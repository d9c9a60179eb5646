#include "tools/dashboard/run_history.hpp"

#include "core/log.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <system_error>

namespace apiary::tools {

nlohmann::json to_json(const HistoryPoint& p) {
  return {{"t", p.time},
          {"epoch", p.epoch},
          {"peers", p.live_peers},
          {"samples_per_s", p.samples_per_second},
          {"loss", p.loss},
          {"test_accuracy", p.test_accuracy},
          {"round_s", p.round_seconds},
          {"rounds_failed", p.rounds_failed}};
}

std::optional<HistoryPoint> history_point_from_json(const nlohmann::json& j) {
  if (!j.is_object()) return std::nullopt;
  try {
    HistoryPoint p;
    p.time = j.at("t").get<double>();
    p.epoch = j.at("epoch").get<std::uint64_t>();
    p.live_peers = j.at("peers").get<std::size_t>();
    p.samples_per_second = j.at("samples_per_s").get<double>();
    p.loss = j.at("loss").get<double>();
    p.test_accuracy = j.at("test_accuracy").get<double>();
    p.round_seconds = j.at("round_s").get<double>();
    p.rounds_failed = j.at("rounds_failed").get<std::uint64_t>();
    if (!std::isfinite(p.time) || !std::isfinite(p.samples_per_second)) return std::nullopt;
    return p;
  } catch (const nlohmann::json::exception&) {
    return std::nullopt;
  }
}

RunHistory::RunHistory(std::size_t max_points, std::filesystem::path file)
    : max_points_(std::max<std::size_t>(max_points, 4)), file_(std::move(file)) {
  if (!file_.empty()) load();
}

void RunHistory::add(const HistoryPoint& point) {
  points_.push_back(point);
  if (points_.size() > max_points_) {
    thin();
    rewrite_file();
  } else {
    append_to_file(point);
  }
}

std::vector<HistoryPoint> RunHistory::since(double since) const {
  auto first = std::lower_bound(points_.begin(), points_.end(), since,
                                [](const HistoryPoint& p, double t) { return p.time < t; });
  return {first, points_.end()};
}

// Keeps the first, every other one after it, and always the newest.
void RunHistory::thin() {
  std::vector<HistoryPoint> kept;
  kept.reserve(points_.size() / 2 + 2);
  for (std::size_t i = 0; i < points_.size(); i += 2) kept.push_back(points_[i]);
  if (points_.size() % 2 == 0) kept.push_back(points_.back());
  points_ = std::move(kept);
}

void RunHistory::load() {
  std::ifstream in(file_);
  if (!in) return;  // a new run directory
  std::string line;
  std::size_t skipped = 0;
  while (std::getline(in, line)) {
    auto point = history_point_from_json(nlohmann::json::parse(line, nullptr, false));
    if (point && (points_.empty() || point->time >= points_.back().time))
      points_.push_back(*point);
    else
      ++skipped;
    if (points_.size() > max_points_) thin();
  }
  if (skipped) {
    log::warn("history {}: skipped {} unreadable line(s)", file_.string(), skipped);
    // A torn last line has no newline: the next append would be glued to it.
    in.close();
    rewrite_file();
  }
  log::info("history {}: {} point(s) from earlier", file_.string(), points_.size());
}

void RunHistory::append_to_file(const HistoryPoint& point) {
  if (file_.empty()) return;
  std::ofstream out(file_, std::ios::app);
  out << to_json(point).dump() << '\n';
  if (!out) log::warn("history {}: cannot append", file_.string());
}

void RunHistory::rewrite_file() {
  if (file_.empty()) return;
  auto temporary = file_;
  temporary += ".tmp";
  {
    std::ofstream out(temporary, std::ios::trunc);
    for (const auto& p : points_) out << to_json(p).dump() << '\n';
    if (!out) {
      log::warn("history {}: cannot write", temporary.string());
      return;
    }
  }
  std::error_code ec;
  std::filesystem::rename(temporary, file_, ec);
  if (ec) log::warn("history {}: {}", file_.string(), ec.message());
}

}  // namespace apiary::tools
