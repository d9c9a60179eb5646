// Real `apiary coordinator` and `apiary join` processes on loopback.
#include "tests/optimizer/process_util.hpp"

#include <nlohmann/json.hpp>

#include <gtest/gtest.h>

#include <cstdio>
#include <iostream>
#include <thread>

using apiary::testing::Coordinator;
using apiary::testing::first_address;
using apiary::testing::fresh_work_dir;
using apiary::testing::Process;
using apiary::testing::read_json;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

void write_config(const fs::path& file, const std::string& run, int average_state_every) {
  std::ofstream(file) << R"({"run": ")" << run << R"(", "target_batch_size": 512, "batch_size": 64,
    "model": {"hidden": [64], "seed": 3},
    "optimizer": {"name": "adam", "lr": 0.003},
    "averaging": {"average_state_every": )"
                      << average_state_every
                      << R"(, "matchmaking_time": 1.0, "averaging_timeout": 8.0}})";
}

}  // namespace

// Three peers train together; all finish, loss falls, rounds are averaged,
// and peers that averaged every round hold identical parameters.
TEST(CollaborationProcesses, ThreePeersTrainTogether) {
  const auto dir = fresh_work_dir("three");
  write_config(dir / "run.json", "it-three", 1);
  Coordinator coordinator(dir);
  const std::string address = coordinator.address();
  ASSERT_FALSE(address.empty()) << coordinator.process().stderr_text();
  std::vector<std::unique_ptr<Process>> peers;
  for (int i = 0; i < 3; ++i) {
    const auto name = "peer" + std::to_string(i);
    peers.push_back(std::make_unique<Process>(
        std::vector<std::string>{APIARY_BIN, "join", "--peers", address, "--run", "it-three",
                                 "--max-epochs", "15", "--time-limit", "100", "--summary",
                                 (dir / (name + ".json")).string(), "--quiet"},
        dir / (name + ".out"), dir / (name + ".err")));
  }
  std::vector<nlohmann::json> summaries;
  for (int i = 0; i < 3; ++i) {
    auto code = peers[i]->wait_for(120s);
    ASSERT_TRUE(code.has_value()) << "peer " << i << " did not finish";
    EXPECT_EQ(*code, 0) << peers[i]->stderr_text();
    summaries.push_back(read_json(dir / ("peer" + std::to_string(i) + ".json")));
  }
  std::map<std::string, int> hashes;
  int averaged_everywhere = 0;
  for (const auto& s : summaries) {
    ASSERT_TRUE(s.is_object());
    EXPECT_EQ(s["epochs"].get<int>(), 15);
    // A peer that missed a round loads the state instead, so it may average fewer.
    averaged_everywhere += s["averaged_rounds"].get<int>() >= 12;
    EXPECT_GT(s["test_accuracy"].get<double>(), 0.5) << s.dump();
    ++hashes[s["parameters_hash"].get<std::string>()];
  }
  EXPECT_GE(averaged_everywhere, 2) << "rounds were not averaged";
  // Rounds include everyone nearly always; at least two peers must agree bit for bit.
  int largest = 0;
  for (auto& [h, n] : hashes) largest = std::max(largest, n);
  EXPECT_GE(largest, 2) << "no two peers hold identical parameters";
  coordinator.stop();
  fs::remove_all(dir);
}

// The coordinator dies after start, a peer is killed mid-training and a late
// peer joins: the survivors keep training, the late joiner downloads the
// state from its peers and finishes with them.
TEST(CollaborationProcesses, SurvivesCoordinatorAndPeerDeathsAndAdmitsLateJoiner) {
  const auto dir = fresh_work_dir("faults");
  write_config(dir / "run.json", "it-faults", 2);
  Coordinator coordinator(dir);
  const std::string address = coordinator.address();
  ASSERT_FALSE(address.empty()) << coordinator.process().stderr_text();
  auto join = [&](const std::string& name, const std::string& via, const std::string& epochs) {
    return std::make_unique<Process>(
        std::vector<std::string>{APIARY_BIN, "join", "--peers", via, "--run", "it-faults",
                                 "--max-epochs", epochs, "--time-limit", "110", "--summary",
                                 (dir / (name + ".json")).string()},
        dir / (name + ".out"), dir / (name + ".err"));
  };
  auto a = join("a", address, "14");
  auto b = join("b", address, "14");
  auto victim = join("victim", address, "14");
  // Wait until the swarm is a few epochs in (a peer may skip an epoch number
  // when it loads the state, so accept any of them).
  bool training = false;
  for (int i = 0; i < 600 && !training && a->running(); ++i) {
    const auto log = a->stderr_text();
    for (int e = 3; e < 14 && !training; ++e) {
      char needle[32];
      std::snprintf(needle, sizeof(needle), "epoch %4d ", e);
      training = log.find(needle) != std::string::npos;
    }
    if (!training) std::this_thread::sleep_for(100ms);
  }
  ASSERT_TRUE(training) << a->stderr_text();
  const auto a_log = a->stderr_text();
  const auto joined = a_log.find("joined as ");
  ASSERT_NE(joined, std::string::npos) << a_log;
  const std::string a_address = first_address(a_log.substr(joined));
  ASSERT_FALSE(a_address.empty());
  // The coordinator republishes the run configuration when the swarm grows;
  // once it has seen all three peers the record lives on them too (epochs are
  // fast enough that epoch 3 can come before that).
  ASSERT_TRUE(coordinator.process().wait_for_text("| 3 peers |", 30s))
      << coordinator.process().stdout_text();
  coordinator.process().signal(SIGKILL);  // no single point of failure
  victim->signal(SIGKILL);                // dies mid-epoch
  // The late joiner knows only peer a; the run configuration is still in the DHT.
  auto late = std::make_unique<Process>(
      std::vector<std::string>{APIARY_BIN, "join", "--peers", a_address, "--run", "it-faults",
                               "--max-epochs", "14", "--time-limit", "100", "--run-key",
                               address.substr(9, 40), "--summary", (dir / "late.json").string()},
      dir / "late.out", dir / "late.err");
  for (auto* p : {a.get(), b.get(), late.get()}) {
    auto code = p->wait_for(150s);
    ASSERT_TRUE(code.has_value());
    EXPECT_EQ(*code, 0) << p->stderr_text();
  }
  for (const char* name : {"a", "b", "late"}) {
    auto s = read_json(dir / (std::string(name) + ".json"));
    ASSERT_TRUE(s.is_object()) << name;
    EXPECT_EQ(s["epochs"].get<int>(), 14) << name;
  }
  EXPECT_NE(late->stderr_text().find("loaded state of epoch"), std::string::npos)
      << late->stderr_text();
  auto late_summary = read_json(dir / "late.json");
  EXPECT_LT(late_summary["averaged_rounds"].get<int>(), 14)
      << "the late joiner should have skipped epochs";
  fs::remove_all(dir);
}
