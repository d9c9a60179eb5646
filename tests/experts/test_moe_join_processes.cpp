// The MoE run of examples/fashion_moe_run.json with real processes: an
// `apiary coordinator`, two `apiary expert-server`s hosting the grid's experts
// and two `apiary join` peers training the model (dense layers + gate + head
// averaged between the peers; experts stepped by their servers). One expert
// server is SIGKILLed mid-training: the peers keep training on the surviving
// experts (no batch skipped for long) and reach >= 80 % test accuracy. The
// peers stop at 82 % (on the full test set, evaluated every epoch) or after
// 75 s, whichever comes first, so a machine busy with other tests gets more
// time; the test takes 30-80 s.
#include "tests/optimizer/process_util.hpp"

#include <nlohmann/json.hpp>

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <regex>
#include <thread>

using apiary::testing::first_address;
using apiary::testing::fresh_work_dir;
using apiary::testing::Process;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

// The newest "epoch N" progress line of a join's stderr (-1: none yet).
int latest_epoch(const std::string& log) {
  static const std::regex progress(R"(epoch +(\d+) \|)");
  int epoch = -1;
  for (auto it = std::sregex_iterator(log.begin(), log.end(), progress);
       it != std::sregex_iterator(); ++it) {
    epoch = std::stoi((*it)[1].str());
  }
  return epoch;
}

// The example run (examples/fashion_moe_run.json), made small enough for a
// loaded 2-core machine: 784-64-[MoE grid 2×4, k=2]-10, experts 64→128→64.
void write_small_moe_config(const fs::path& file, const std::string& run) {
  std::ifstream example(APIARY_SOURCE_DIR "/examples/fashion_moe_run.json");
  auto config = nlohmann::json::parse(example);
  config["run"] = run;
  config["model"]["hidden"] = {64};
  config["model"]["moe"]["grid"] = {2, 4};
  config["model"]["moe"]["expert_inner"] = 128;
  config["model"]["moe"]["forward_timeout"] = 3.0;
  config["model"]["moe"]["backward_timeout"] = 3.0;
  config["model"]["moe"]["timeout_after_k_min"] = 0.3;
  config["target_batch_size"] = 1024;
  config["max_epochs"] = 0;
  config["target_accuracy"] = 0.82;
  std::ofstream(file) << config.dump(2);
}

std::unique_ptr<Process> start_expert_server(const fs::path& dir, const std::string& name,
                                             const std::string& pattern, const std::string& peers) {
  std::vector<std::string> argv{
      APIARY_BIN, "expert-server", "--experts",       pattern, "--hidden", "64",
      "--inner",  "128",           "--update-period", "1",     "--lr",     "0.002"};
  if (!peers.empty()) argv.insert(argv.end(), {"--peers", peers});
  return std::make_unique<Process>(argv, dir / (name + ".out"), dir / (name + ".err"));
}

}  // namespace

TEST(MoeJoinProcesses, TwoPeersTrainWithRemoteExpertsAndSurviveAServerKill) {
  if (!fs::exists("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"))
    GTEST_SKIP() << "dataset-fashion-mnist is not installed";
  const auto dir = fresh_work_dir("moe-join");
  write_small_moe_config(dir / "run.json", "it-moe");

  Process coordinator(
      {APIARY_BIN, "coordinator", "--config", (dir / "run.json").string(), "--status-period", "2"},
      dir / "coordinator.out", dir / "coordinator.err");
  ASSERT_TRUE(coordinator.wait_for_text("apiary://", 20s)) << coordinator.stderr_text();
  const std::string address = first_address(coordinator.stdout_text());
  auto survivor = start_expert_server(dir, "server0", "ffn.0.[0:4]", address);
  auto victim = start_expert_server(dir, "server1", "ffn.1.[0:4]", address);
  ASSERT_TRUE(survivor->wait_for_text("apiary://", 20s)) << survivor->stderr_text();
  ASSERT_TRUE(victim->wait_for_text("apiary://", 20s)) << victim->stderr_text();

  auto join = [&](const std::string& name) {
    return std::make_unique<Process>(
        std::vector<std::string>{APIARY_BIN, "join", "--peers", address, "--run", "it-moe",
                                 "--time-limit", "75", "--summary",
                                 (dir / (name + ".json")).string()},
        dir / (name + ".out"), dir / (name + ".err"));
  };
  auto a = join("a");
  auto b = join("b");

  // Kill one expert server once the peers are a few epochs in.
  int epoch_at_kill = -1;
  for (int i = 0; i < 900 && a->running(); ++i) {
    epoch_at_kill = latest_epoch(a->stderr_text());
    if (epoch_at_kill >= 3) break;
    std::this_thread::sleep_for(100ms);
  }
  ASSERT_GE(epoch_at_kill, 3) << a->stderr_text();
  victim->signal(SIGKILL);
  ASSERT_TRUE(victim->wait_for(10s).has_value());

  for (auto* peer : {a.get(), b.get()}) {
    auto code = peer->wait_for(90s);
    ASSERT_TRUE(code.has_value()) << "a peer did not finish";
    EXPECT_EQ(*code, 0) << peer->stderr_text();
  }
  for (const char* name : {"a", "b"}) {
    std::ifstream in(dir / (std::string(name) + ".json"));
    const auto summary = nlohmann::json::parse(in, nullptr, false);
    ASSERT_TRUE(summary.is_object()) << name;
    std::printf("peer %s: %s\n", name, summary.dump().c_str());
    // Training went on after the kill: several more epochs, most batches computed.
    EXPECT_GE(summary["epochs"].get<int>(), epoch_at_kill + 3) << summary.dump();
    EXPECT_LT(summary["skipped_batches"].get<double>(),
              0.1 * summary["local_samples"].get<double>() / 64)
        << summary.dump();
    EXPECT_GT(summary["averaged_rounds"].get<int>(), 0) << summary.dump();
    // Issue 6's bar, on the full test set, for a model whose hidden features
    // reach the head only through the experts (10 % by chance). Measured with
    // a 55 s limit instead of the 82 % stop: 84.0-85.0 % in 74-84 epochs (load
    // average ~9); 80 % takes ~20k samples.
    EXPECT_GE(summary["test_accuracy"].get<double>(), 0.80) << summary.dump();
  }
  EXPECT_TRUE(survivor->running()) << survivor->stderr_text();
  survivor->signal(SIGTERM);
  EXPECT_EQ(survivor->wait_for(15s).value_or(-1), 0);
  coordinator.signal(SIGTERM);
  EXPECT_EQ(coordinator.wait_for(10s).value_or(-1), 0);
  fs::remove_all(dir);
}

// `apiary train --solo --config` of the same run: alone, but its experts are
// still remote, so it needs --peers (and says so without).
TEST(MoeJoinProcesses, SoloRunFindsItsExpertsThroughPeers) {
  if (!fs::exists("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"))
    GTEST_SKIP() << "dataset-fashion-mnist is not installed";
  const auto dir = fresh_work_dir("moe-solo");
  write_small_moe_config(dir / "run.json", "it-moe-solo");
  auto server = start_expert_server(dir, "server", "ffn.[0:2].[0:4]", "");
  ASSERT_TRUE(server->wait_for_text("apiary://", 20s)) << server->stderr_text();
  const std::string address = first_address(server->stdout_text());

  Process without({APIARY_BIN, "train", "--solo", "--config", (dir / "run.json").string()},
                  dir / "without.out", dir / "without.err");
  EXPECT_NE(without.wait_for(30s).value_or(0), 0);
  EXPECT_NE(without.stderr_text().find("give --peers"), std::string::npos) << without.stderr_text();

  Process solo({APIARY_BIN, "train", "--solo", "--config", (dir / "run.json").string(), "--peers",
                address, "--max-epochs", "8", "--time-limit", "60", "--quiet", "--summary",
                (dir / "solo.json").string()},
               dir / "solo.out", dir / "solo.err");
  ASSERT_EQ(solo.wait_for(90s).value_or(-1), 0) << solo.stderr_text();
  std::ifstream in(dir / "solo.json");
  const auto summary = nlohmann::json::parse(in, nullptr, false);
  ASSERT_TRUE(summary.is_object());
  EXPECT_EQ(summary["epochs"].get<int>(), 8) << summary.dump();
  EXPECT_EQ(summary["skipped_batches"].get<int>(), 0) << summary.dump();
  EXPECT_GT(summary["test_accuracy"].get<double>(), 0.65) << summary.dump();  // 8k samples
  server->signal(SIGTERM);
  EXPECT_EQ(server->wait_for(15s).value_or(-1), 0);
  fs::remove_all(dir);
}
