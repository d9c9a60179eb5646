// The CLI never pretends: options it cannot honour are refused (exit 2, a
// reason on stderr), and `apiary status` fails (exit 1) when the run's
// configuration is missing. Real processes; no training.
#include "tests/optimizer/process_util.hpp"

#include <nlohmann/json.hpp>

#include <gtest/gtest.h>

using apiary::testing::Coordinator;
using apiary::testing::fresh_work_dir;
using apiary::testing::Process;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

// A small MLP run (no expert grid) in DIR/run.json, as Coordinator expects.
fs::path write_config(const fs::path& dir, const std::string& run) {
  const auto file = dir / "run.json";
  std::ofstream(file) << R"({"run": ")" << run << R"(", "target_batch_size": 256,
    "batch_size": 64, "model": {"hidden": [16], "seed": 3}})";
  return file;
}

struct Outcome {
  int code = -1;
  std::string out, err;
};

Outcome run_apiary(const fs::path& dir, std::vector<std::string> args, const std::string& name) {
  args.insert(args.begin(), APIARY_BIN);
  Process p(std::move(args), dir / (name + ".out"), dir / (name + ".err"));
  Outcome o;
  o.code = p.wait_for(60s).value_or(-1);
  o.out = p.stdout_text();
  o.err = p.stderr_text();
  return o;
}

void expect_refused(const Outcome& o, const std::string& reason) {
  EXPECT_EQ(o.code, 2) << o.err;
  EXPECT_NE(o.err.find(reason), std::string::npos) << o.err;
}

const std::string kPeer =
    "apiary://12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN@127.0.0.1:9";

}  // namespace

// Swarm training computes on the CPU: --device cuda would be a lie, with or without a GPU.
TEST(CliRefuses, JoinOnCuda) {
  const auto dir = fresh_work_dir("refuse-cuda");
  expect_refused(run_apiary(dir, {"join", "--peers", kPeer, "--run", "r", "--device", "cuda"}, "j"),
                 "--device cuda: swarm training runs on the CPU only");
  expect_refused(
      run_apiary(
          dir, {"train", "--solo", "--config", write_config(dir, "r").string(), "--device", "cuda"},
          "t"),
      "--config trains on the CPU only");
  fs::remove_all(dir);
}

// A checkpoint period without a checkpoint folder would silently write nothing.
TEST(CliRefuses, CheckpointPeriodWithoutFolder) {
  const auto dir = fresh_work_dir("refuse-ckpt");
  const auto config = write_config(dir, "r").string();
  const std::string reason = "needs --checkpoint-dir";
  expect_refused(
      run_apiary(dir, {"join", "--peers", kPeer, "--run", "r", "--checkpoint-every", "2"}, "j"),
      reason);
  expect_refused(
      run_apiary(dir, {"coordinator", "--config", config, "--checkpoint-every", "2"}, "c"), reason);
  expect_refused(run_apiary(dir,
                            {"expert-server", "--experts", "ffn.[0:2]", "--checkpoint-interval",
                             "5", "--listen", "127.0.0.1:0"},
                            "e"),
                 reason);
  fs::remove_all(dir);
}

// Expert options of a run that has no experts would be ignored.
TEST(CliRefuses, ExpertOptionsOfARunWithoutExperts) {
  const auto dir = fresh_work_dir("refuse-experts");
  const auto config = write_config(dir, "r").string();
  expect_refused(run_apiary(dir, {"coordinator", "--config", config, "--expert-servers", "2"}, "c"),
                 "--expert-servers: this run has no expert grid");
  expect_refused(run_apiary(dir, {"train", "--solo", "--config", config, "--peers", kPeer}, "t"),
                 "--peers: this run calls no remote experts");
  fs::remove_all(dir);
}

// Asked about a run the swarm does not know, status says so and exits 1 (table and JSON).
TEST(StatusCli, MissingRunExitsOne) {
  const auto dir = fresh_work_dir("status-missing");
  write_config(dir, "status-real");
  Coordinator coordinator(dir);
  const std::string address = coordinator.address();
  ASSERT_FALSE(address.empty()) << coordinator.process().stderr_text();
  const auto table = run_apiary(dir, {"status", "--peers", address, "--run", "no-such-run"}, "s");
  EXPECT_EQ(table.code, 1) << table.err;
  EXPECT_NE(table.out.find("configuration not found"), std::string::npos) << table.out;
  const auto json =
      run_apiary(dir, {"status", "--peers", address, "--run", "no-such-run", "--json"}, "sj");
  EXPECT_EQ(json.code, 1) << json.err;
  const auto j = nlohmann::json::parse(json.out, nullptr, false);
  ASSERT_TRUE(j.is_object()) << json.out;
  EXPECT_TRUE(j["config"].is_null());
  EXPECT_TRUE(j["config_error"].is_string());
  coordinator.stop();
  fs::remove_all(dir);
}

// A real run: exit 0, and the JSON counts live and stale peers besides all reports.
TEST(StatusCli, RealRunReportsLiveAndStalePeers) {
  const auto dir = fresh_work_dir("status-real");
  write_config(dir, "status-real");
  Coordinator coordinator(dir);
  const std::string address = coordinator.address();
  ASSERT_FALSE(address.empty()) << coordinator.process().stderr_text();
  const auto status = run_apiary(
      dir, {"status", "--peers", address, "--run", "status-real", "--json", "--live-seconds", "5"},
      "s");
  EXPECT_EQ(status.code, 0) << status.err;
  const auto j = nlohmann::json::parse(status.out, nullptr, false);
  ASSERT_TRUE(j.is_object()) << status.out;
  EXPECT_TRUE(j["config"].is_object()) << status.out;
  EXPECT_EQ(j["config"]["target_batch_size"], 256) << status.out;
  ASSERT_TRUE(j["live_peers"].is_number_unsigned()) << status.out;
  ASSERT_TRUE(j["stale_peers"].is_number_unsigned()) << status.out;
  EXPECT_EQ(j["live_peers"].get<std::size_t>() + j["stale_peers"].get<std::size_t>(),
            j["peers"].get<std::size_t>());
  EXPECT_EQ(j["live_seconds"], 5.0);
  const auto table = run_apiary(dir, {"status", "--peers", address, "--run", "status-real"}, "t");
  EXPECT_EQ(table.code, 0) << table.err;
  EXPECT_NE(table.out.find("live peers"), std::string::npos) << table.out;
  coordinator.stop();
  fs::remove_all(dir);
}

// A token run: status without a membership is refused by the run's peers; with
// the token issued to its identity it reads the run, a training member's
// report and the time to the next epoch; --watch refreshes until SIGTERM.
TEST(StatusCli, TokenRunEtaAndWatch) {
  const auto dir = fresh_work_dir("status-token");
  write_config(dir, "status-token");
  auto key = [&](const std::string& name) {
    auto id = apiary::testing::run_to_end(
        {APIARY_BIN, "keygen", "--out", (dir / (name + ".key")).string()}, dir, "keygen-" + name);
    while (!id.empty() && (id.back() == '\n' || id.back() == ' ')) id.pop_back();
    apiary::testing::run_to_end(
        {APIARY_BIN, "coordinator", "token", "--run", "status-token", "--identity",
         (dir / "run.key").string(), "--for", id, "--out", (dir / (name + ".tok")).string()},
        dir, "token-" + name);
  };
  apiary::testing::run_to_end({APIARY_BIN, "keygen", "--out", (dir / "run.key").string()}, dir,
                              "keygen-run");
  key("member");
  key("watcher");
  Coordinator coordinator(dir, {"--auth", "token", "--identity", (dir / "run.key").string()});
  const std::string address = coordinator.address();
  ASSERT_FALSE(address.empty()) << coordinator.process().stderr_text();
  Process member({APIARY_BIN, "join", "--peers", address, "--run", "status-token", "--identity",
                  (dir / "member.key").string(), "--token", (dir / "member.tok").string(),
                  "--time-limit", "120"},
                 dir / "member.out", dir / "member.err");
  ASSERT_TRUE(member.wait_for_text("epoch    2 ", 60s, /*in_stderr=*/true)) << member.stderr_text();

  const auto outsider =
      run_apiary(dir, {"status", "--peers", address, "--run", "status-token"}, "o");
  EXPECT_NE(outsider.code, 0) << outsider.out;
  expect_refused(run_apiary(dir,
                            {"status", "--peers", address, "--run", "status-token", "--token",
                             (dir / "watcher.tok").string()},
                            "no-identity"),
                 "--token needs --identity");

  const std::vector<std::string> member_args{"status",
                                             "--peers",
                                             address,
                                             "--run",
                                             "status-token",
                                             "--token",
                                             (dir / "watcher.tok").string(),
                                             "--identity",
                                             (dir / "watcher.key").string(),
                                             "--json"};
  const auto status = run_apiary(dir, member_args, "s");
  ASSERT_EQ(status.code, 0) << status.err;
  const auto j = nlohmann::json::parse(status.out, nullptr, false);
  ASSERT_TRUE(j.is_object()) << status.out;
  EXPECT_TRUE(j["config"].is_object()) << status.out;
  EXPECT_GE(j["live_peers"].get<std::size_t>(), 1u) << status.out;
  ASSERT_TRUE(j["eta_next_epoch_s"].is_number()) << status.out;
  EXPECT_GE(j["eta_next_epoch_s"].get<double>(), 0.0);
  EXPECT_LT(j["eta_next_epoch_s"].get<double>(), 60.0) << status.out;  // 256 samples per epoch

  auto watch_args = member_args;
  watch_args.insert(watch_args.begin(), APIARY_BIN);
  watch_args.insert(watch_args.end(), {"--watch", "0.5"});
  Process watch(watch_args, dir / "watch.out", dir / "watch.err");
  for (int i = 0; i < 200 && apiary::testing::lines_with(watch.stdout_text(), "{").size() < 3; ++i)
    std::this_thread::sleep_for(100ms);
  watch.signal(SIGTERM);
  EXPECT_EQ(watch.wait_for(30s).value_or(-1), 0) << watch.stderr_text();
  const auto snapshots = apiary::testing::lines_with(watch.stdout_text(), "{");
  ASSERT_GE(snapshots.size(), 3u) << watch.stdout_text();
  for (const auto& line : snapshots)
    EXPECT_TRUE(nlohmann::json::parse(line, nullptr, false).is_object()) << line;
  member.signal(SIGTERM);
  member.wait_for(30s);
  coordinator.stop();
  fs::remove_all(dir);
}
