// The coordinator's dashboard and /metrics, with real processes on loopback:
// a coordinator and two `apiary join` peers train a small MLP; headless
// Chromium renders the dashboard and the test reads the DOM it built (the
// peers, charts with data points); the /metrics of a live join parses as
// strict Prometheus text; a restarted coordinator continues its history.
#include "tests/optimizer/process_util.hpp"
#include "tests/tools/prometheus_text.hpp"

#include <httplib.h>
#include <nlohmann/json.hpp>

#include <gtest/gtest.h>

#include <regex>

using apiary::testing::Coordinator;
using apiary::testing::fresh_work_dir;
using apiary::testing::Process;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

void write_config(const fs::path& dir) {
  std::ofstream(dir / "run.json") << R"({"run": "dash", "target_batch_size": 512,
    "batch_size": 64, "model": {"hidden": [32], "seed": 3},
    "averaging": {"matchmaking_time": 0.5, "averaging_timeout": 5.0, "min_group_size": 2},
    "max_epochs": 100000})";
}

// The first "http://HOST:PORT" after `prefix` in `text` ("" if none yet).
std::string url_after(const std::string& text, const std::string& prefix) {
  std::smatch m;
  if (std::regex_search(text, m, std::regex(prefix + "(http://[0-9.]+:[0-9]+)"))) return m[1];
  return {};
}

std::string wait_for_url(Process& p, const std::string& prefix, bool in_stderr) {
  for (int i = 0; i < 150; ++i) {
    auto url = url_after(in_stderr ? p.stderr_text() : p.stdout_text(), prefix);
    if (!url.empty()) return url;
    std::this_thread::sleep_for(100ms);
  }
  return {};
}

// GET url+path; "" on any failure.
std::string http_get(const std::string& url, const std::string& path) {
  httplib::Client client(url);
  client.set_connection_timeout(5);
  client.set_read_timeout(5);
  auto response = client.Get(path.c_str());
  return response && response->status == 200 ? response->body : std::string();
}

// Polls /api/peers until `count` peers are live and the history has `points`.
nlohmann::json wait_for_peers(const std::string& url, std::size_t count, std::size_t points) {
  for (int i = 0; i < 600; ++i) {
    auto peers = nlohmann::json::parse(http_get(url, "/api/peers"), nullptr, false);
    auto history = nlohmann::json::parse(http_get(url, "/api/history"), nullptr, false);
    std::size_t live = 0;
    if (peers.is_array())
      for (const auto& p : peers) live += p.value("live", false) && p.value("epoch", 0) > 0;
    if (live >= count && history.is_array() && history.size() >= points) return peers;
    std::this_thread::sleep_for(100ms);
  }
  return nullptr;
}

// Headless Chromium's DOM of the page after its scripts ran (and a screenshot).
std::string render(const std::string& url, const fs::path& dir) {
  const std::vector<std::string> common{"/usr/bin/chromium",
                                        "--headless=new",
                                        "--no-sandbox",
                                        "--disable-gpu",
                                        "--no-first-run",
                                        "--user-data-dir=" + (dir / "chrome").string(),
                                        "--virtual-time-budget=5000"};
  auto args = common;
  args.push_back("--dump-dom");
  args.push_back(url + "/");
  Process dump(args, dir / "dom.html", dir / "chrome.err");
  EXPECT_EQ(dump.wait_for(90s).value_or(-1), 0) << dump.stderr_text();
  args = common;
  args.insert(args.end(), {"--window-size=1280,1000", "--hide-scrollbars",
                           "--screenshot=" + (dir / "dashboard.png").string(), url + "/"});
  Process shot(args, dir / "shot.out", dir / "shot.err");
  EXPECT_EQ(shot.wait_for(90s).value_or(-1), 0) << shot.stderr_text();
  return dump.stdout_text();
}

int chart_points(const std::string& dom, const std::string& field) {
  std::smatch m;
  std::regex re("data-field=\"" + field + "\" data-points=\"([0-9]+)\"");
  return std::regex_search(dom, m, re) ? std::stoi(m[1]) : -1;
}

}  // namespace

TEST(DashboardProcesses, ChromiumShowsThePeersAndChartsAndMetricsAreStrict) {
  const auto dir = fresh_work_dir("dashboard");
  write_config(dir);
  const std::vector<std::string> coordinator_args{"--checkpoint-dir",  (dir / "ckpt").string(),
                                                  "--identity",        (dir / "run.key").string(),
                                                  "--target-accuracy", "0.8"};
  auto coordinator = std::make_unique<Coordinator>(dir, coordinator_args);
  ASSERT_FALSE(coordinator->address().empty()) << coordinator->process().stderr_text();
  const auto url = wait_for_url(coordinator->process(), "dashboard: ", false);
  ASSERT_FALSE(url.empty()) << coordinator->process().stdout_text();

  std::vector<std::unique_ptr<Process>> peers;
  for (int i = 0; i < 2; ++i) {
    peers.push_back(std::make_unique<Process>(
        std::vector<std::string>{APIARY_BIN, "join", "--peers", coordinator->address(), "--run",
                                 "dash", "--eval-every", "5", "--metrics", "127.0.0.1:0"},
        dir / ("peer" + std::to_string(i) + ".out"), dir / ("peer" + std::to_string(i) + ".err")));
  }
  const auto reported = wait_for_peers(url, 2, 5);
  ASSERT_TRUE(reported.is_array()) << coordinator->process().stderr_text();

  // The page, rendered: one row per peer (by id), charts with points.
  const std::string page = http_get(url, "/");
  EXPECT_LE(page.size(), 200u * 1024) << "the dashboard page weighs more than 200 KB";
  const std::string dom = render(url, dir);
  for (const auto& p : reported)
    EXPECT_NE(dom.find("data-peer=\"" + p["peer"].get<std::string>() + "\""), std::string::npos)
        << p["peer"];
  EXPECT_NE(dom.find("class=\"peer live\""), std::string::npos);
  EXPECT_GE(chart_points(dom, "samples_per_s"), 2) << dom;
  EXPECT_GE(chart_points(dom, "peers"), 2);
  EXPECT_NE(dom.find("<polyline points="), std::string::npos);
  EXPECT_NE(dom.find("dash"), std::string::npos);  // the run's name
  EXPECT_TRUE(fs::file_size(dir / "dashboard.png") > 10000);
  if (const char* keep = std::getenv("APIARY_DASHBOARD_SCREENSHOT"))
    fs::copy_file(dir / "dashboard.png", keep, fs::copy_options::overwrite_existing);

  // /metrics of a live join: strict text, the training and RPC families there.
  const auto metrics_url = wait_for_url(*peers[0], "metrics at ", true);
  ASSERT_FALSE(metrics_url.empty()) << peers[0]->stderr_text();
  const auto text = http_get(metrics_url, "/metrics");
  const auto parsed = apiary::testing::parse_prometheus_text(text);
  EXPECT_TRUE(parsed.problems.empty()) << parsed.problems.front() << "\n" << text;
  EXPECT_EQ(parsed.family_types.count("apiary_training_samples_total"), 1u) << text;
  EXPECT_EQ(parsed.family_types.count("apiary_rpc_bytes_sent_total"), 1u) << text;
  EXPECT_GT(parsed.samples.at("apiary_training_samples_total"), 0);
  // And Python's prometheus_client parser (Debian python3-prometheus-client) agrees.
  std::ofstream(dir / "metrics.txt") << text;
  Process python({"/usr/bin/python3", "-c",
                  "import sys\nfrom prometheus_client.parser import text_string_to_metric_families"
                  "\nprint(len(list(text_string_to_metric_families(open(sys.argv[1]).read()))))",
                  (dir / "metrics.txt").string()},
                 dir / "python.out", dir / "python.err");
  EXPECT_EQ(python.wait_for(30s).value_or(-1), 0) << python.stderr_text();
  EXPECT_EQ(std::stoul("0" + python.stdout_text()), parsed.family_types.size());

  // A restarted coordinator keeps the charts: its history continues from the run directory.
  const auto before = nlohmann::json::parse(http_get(url, "/api/history"));
  coordinator->stop();
  coordinator = std::make_unique<Coordinator>(dir, coordinator_args);
  const auto url2 = wait_for_url(coordinator->process(), "dashboard: ", false);
  ASSERT_FALSE(url2.empty());
  const auto after = nlohmann::json::parse(http_get(url2, "/api/history"));
  ASSERT_GE(after.size(), before.size() / 2);  // thinned at most once
  EXPECT_DOUBLE_EQ(after.front()["t"].get<double>(), before.front()["t"].get<double>());
  for (auto& p : peers) p->signal(SIGTERM);
  coordinator->stop();
}
