// The dashboard's pieces without processes: the run history (bounded,
// persisted, torn lines skipped), the ETAs, the JSON the API answers with, the
// progress printer and the metrics text.
#include "core/metrics.hpp"
#include "tests/tools/prometheus_text.hpp"
#include "tools/dashboard/dashboard_view.hpp"
#include "tools/dashboard/training_metrics.hpp"
#include "tools/progress_printer.hpp"

#include <nlohmann/json.hpp>

#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

using namespace apiary;
using namespace apiary::tools;
namespace fs = std::filesystem;

namespace {

HistoryPoint point_at(double t, double accuracy = -1) {
  HistoryPoint p;
  p.time = t;
  p.epoch = static_cast<std::uint64_t>(t);
  p.test_accuracy = accuracy;
  return p;
}

fs::path fresh_dir(const std::string& name) {
  auto dir = fs::temp_directory_path() / ("apiary-dash-" + name + "-" + std::to_string(getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

optimizer::PeerProgress report(const std::string& peer, double time, double sps) {
  optimizer::PeerProgress r;
  r.peer = peer;
  r.report_time = time;
  r.samples_per_second = sps;
  r.epoch = 7;
  r.rounds_averaged = 3;
  r.bytes_sent = 1000;
  return r;
}

}  // namespace

TEST(RunHistory, StaysBoundedAndKeepsTheWholeSpan) {
  RunHistory history(100);
  for (int i = 0; i < 10000; ++i) history.add(point_at(i));
  EXPECT_LE(history.points().size(), 100u);
  EXPECT_GE(history.points().size(), 50u);
  EXPECT_EQ(history.points().front().time, 0);
  EXPECT_EQ(history.points().back().time, 9999);
  for (std::size_t i = 1; i < history.points().size(); ++i)
    EXPECT_LT(history.points()[i - 1].time, history.points()[i].time);
  EXPECT_EQ(history.since(9990).size(), static_cast<std::size_t>(std::count_if(
                                            history.points().begin(), history.points().end(),
                                            [](const HistoryPoint& p) { return p.time >= 9990; })));
}

TEST(RunHistory, ContinuesFromItsFileAndSkipsTornLines) {
  const auto file = fresh_dir("history") / "history.jsonl";
  {
    RunHistory history(64, file);
    for (int i = 0; i < 200; ++i) history.add(point_at(i, i / 1000.0));  // thinned on the way
  }
  std::ofstream(file, std::ios::app) << "{\"t\": 5000, \"epo";  // a crash mid-write
  RunHistory reloaded(64, file);
  ASSERT_FALSE(reloaded.points().empty());
  EXPECT_EQ(reloaded.points().front().time, 0);
  EXPECT_EQ(reloaded.points().back().time, 199);
  EXPECT_DOUBLE_EQ(reloaded.points().back().test_accuracy, 0.199);
  reloaded.add(point_at(200));
  RunHistory again(64, file);
  EXPECT_EQ(again.points().back().time, 200);
}

TEST(AccuracyEta, ExtrapolatesARisingAccuracyOnly) {
  std::vector<HistoryPoint> rising;
  for (int i = 0; i < 10; ++i) rising.push_back(point_at(i * 10.0, 0.5 + 0.01 * i));  // +0.001/s
  auto eta = accuracy_eta(rising, 0.69);
  ASSERT_TRUE(eta);
  EXPECT_NEAR(*eta, 100.0, 1.0);               // 0.59 now, 0.1 to go at 0.001/s
  EXPECT_EQ(accuracy_eta(rising, 0.55), 0.0);  // reached
  std::vector<HistoryPoint> flat;
  for (int i = 0; i < 10; ++i) flat.push_back(point_at(i, 0.6));
  EXPECT_FALSE(accuracy_eta(flat, 0.8));
  EXPECT_FALSE(accuracy_eta({point_at(1), point_at(2)}, 0.8));  // no accuracy reported
}

TEST(DashboardView, CountsLivePeersAndAnswersWithEveryField) {
  DashboardRun run;
  run.config.run = "r";
  run.config.target_batch_size = 1000;
  run.address = "apiary://x@127.0.0.1:1";
  run.model_parameters = 42;
  DashboardView view(run, RunHistory(16), 15);
  optimizer::GlobalProgress global;
  global.global_epoch = 7;
  global.estimated_samples = 400;
  view.update({report("aa", 100, 200), report("bb", 99, 100), report("cc", 50, 999)}, global, 100);
  const auto r = nlohmann::json::parse(view.run_json());
  EXPECT_EQ(r["live_peers"], 2);  // cc's report is 50 s old
  EXPECT_DOUBLE_EQ(r["samples_per_s"].get<double>(), 300);
  EXPECT_DOUBLE_EQ(r["eta_next_epoch_s"].get<double>(), 2.0);  // 600 samples at 300/s
  EXPECT_EQ(r["epoch"], 7);
  EXPECT_EQ(r["model_parameters"], 42);
  EXPECT_TRUE(r["target_accuracy"].is_null());
  const auto peers = nlohmann::json::parse(view.peers_json());
  ASSERT_EQ(peers.size(), 3u);
  EXPECT_EQ(peers[0]["peer"], "aa");
  EXPECT_EQ(peers[0]["mode"], "public");
  EXPECT_EQ(peers[0]["rounds_averaged"], 3);
  EXPECT_EQ(peers[0]["bytes_sent"], 1000);
  EXPECT_TRUE(peers[0]["loss"].is_null());  // -1 in the report: unknown
  EXPECT_FALSE(peers[2]["live"].get<bool>());
  const auto history = nlohmann::json::parse(view.history_json());
  ASSERT_EQ(history.size(), 1u);
  EXPECT_EQ(history[0]["peers"], 2);
}

TEST(ProgressPrinter, PlainLinesWithoutATerminalOneLiveLineWithOne) {
  char plain[256] = {}, live[256] = {};
  {
    std::FILE* out = fmemopen(plain, sizeof plain, "w");
    ProgressPrinter printer(out);  // not a terminal
    EXPECT_FALSE(printer.live());
    printer.update("epoch 1");
    printer.update("epoch 2");
    std::fclose(out);
  }
  EXPECT_STREQ(plain, "epoch 1\nepoch 2\n");
  {
    std::FILE* out = fmemopen(live, sizeof live, "w");
    {
      ProgressPrinter printer(out, /*live=*/true);
      printer.update("epoch 1");
      printer.update("epoch 2");
      printer.print_line("warning");
      printer.update("epoch 3");
    }  // finish(): the newline
    std::fclose(out);
  }
  EXPECT_STREQ(live, "\r\033[Kepoch 1\r\033[Kepoch 2\r\033[Kwarning\n\r\033[Kepoch 3\n");
  EXPECT_EQ(duration_text(seconds_to_next_epoch(120, 0, 2)), "60 s");
  EXPECT_EQ(duration_text(seconds_to_next_epoch(700, 100, 2)), "5.0 min");
  EXPECT_EQ(duration_text(7200), "2.0 h");
  EXPECT_EQ(duration_text(seconds_to_next_epoch(10, 0, 0)), "–");
  EXPECT_EQ(duration_text(std::nullopt), "–");
  EXPECT_EQ(duration_text(seconds_to_next_epoch(10, 50, 1)), "0 s");  // past the target
}

TEST(TrainingMetrics, TheRegistryTextIsStrictPrometheus) {
  optimizer::TrainerStatus s;
  s.epoch = 3;
  s.local_samples = 640;
  s.loss = 0.5;
  record_training_status(s);
  s.local_samples = 1280;
  record_training_status(s);
  metrics::Registry::global().histogram("apiary_averaging_round_seconds").observe(0.2);
  const auto text = metrics::Registry::global().to_prometheus();
  const auto parsed = apiary::testing::parse_prometheus_text(text);
  EXPECT_TRUE(parsed.problems.empty()) << parsed.problems.front();
  EXPECT_EQ(parsed.samples.at("apiary_training_samples_total"), 1280);
  EXPECT_EQ(parsed.samples.at("apiary_training_epoch"), 3);
  EXPECT_EQ(parsed.family_types.at("apiary_averaging_round_seconds"), "histogram");
  // The strict reader does refuse what it should.
  EXPECT_FALSE(apiary::testing::parse_prometheus_text("x 1\n").problems.empty());
  EXPECT_FALSE(
      apiary::testing::parse_prometheus_text("# TYPE a gauge\na 1\na 2\n").problems.empty());
  EXPECT_FALSE(apiary::testing::parse_prometheus_text("# TYPE a counter\na 1\n").problems.empty());
}
