// `apiary train --solo --config` and examples/custom_loop as real processes.
#include "tests/optimizer/process_util.hpp"

#include <nlohmann/json.hpp>

#include <gtest/gtest.h>

#include <regex>

using apiary::testing::Process;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

const char* kData = "/usr/share/datasets/fashion-mnist";

bool have_data() {
  return fs::exists(fs::path(kData) / "train-images-idx3-ubyte.gz");
}

fs::path work_dir(const std::string& name) {
  auto dir = fs::temp_directory_path() / ("apiary-tt-" + name + "-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

fs::path write_config(const fs::path& dir) {
  const auto file = dir / "run.json";
  std::ofstream(file) << R"({"run": "solo-cli", "target_batch_size": 256, "batch_size": 64,
    "model": {"hidden": [64], "seed": 3},
    "optimizer": {"name": "adam", "lr": 0.003}, "max_epochs": 1000})";
  return file;
}

}  // namespace

// The whole run to its epoch limit: one JSON object with the demo's field names.
TEST(TrainSoloConfig, JsonSummaryAtEpochLimit) {
  if (!have_data()) GTEST_SKIP() << "dataset-fashion-mnist is not installed";
  const auto dir = work_dir("json");
  Process train({APIARY_BIN, "train", "--solo", "--config", write_config(dir).string(),
                 "--max-epochs", "40", "--eval-every", "10", "--json", "--quiet"},
                dir / "out", dir / "err");
  const auto code = train.wait_for(90s);
  ASSERT_TRUE(code.has_value()) << "did not finish";
  ASSERT_EQ(*code, 0) << train.stderr_text();
  const auto out = nlohmann::json::parse(train.stdout_text(), nullptr, false);
  ASSERT_TRUE(out.is_object()) << train.stdout_text();
  EXPECT_EQ(out["mode"], "solo");
  EXPECT_EQ(out["run"], "solo-cli");
  EXPECT_EQ(out["epochs"].get<int>(), 40);
  // A group of one steps every 256 samples: exactly 40 × 256 of them.
  EXPECT_EQ(out["local_samples"].get<int>(), 40 * 256);
  EXPECT_EQ(out["averaged_rounds"].get<int>(), 40);
  EXPECT_GT(out["test_accuracy"].get<double>(), 0.6) << "10 240 samples of Adam beat chance (0.1)";
  EXPECT_GT(out["samples_per_s"].get<double>(), 0.0);
  EXPECT_GT(out["seconds"].get<double>(), 0.0);
  EXPECT_FALSE(out["hit_time_limit"].get<bool>());
  // Nothing to wait for alone: well under half the time is "communication".
  EXPECT_GE(out["communication_seconds"].get<double>(), 0.0);
  EXPECT_LT(out["communication_fraction"].get<double>(), 0.5);
  EXPECT_EQ(out["parameters_hash"].get<std::string>().size(), 64u);
}

// Progress lines on stderr while it trains, and the time limit stops it.
TEST(TrainSoloConfig, ProgressLinesAndTimeLimit) {
  if (!have_data()) GTEST_SKIP() << "dataset-fashion-mnist is not installed";
  const auto dir = work_dir("progress");
  Process train({APIARY_BIN, "train", "--solo", "--config", write_config(dir).string(),
                 "--time-limit", "3", "--batch-size", "32", "--data", kData},
                dir / "out", dir / "err");
  const auto code = train.wait_for(60s);
  ASSERT_TRUE(code.has_value()) << "did not stop at its time limit";
  ASSERT_EQ(*code, 0) << train.stderr_text();
  const std::string err = train.stderr_text();
  const std::regex progress(R"(epoch +\d+ \| local +\d+ samples)");
  EXPECT_GE(
      std::distance(std::sregex_iterator(err.begin(), err.end(), progress), std::sregex_iterator()),
      2)
      << err;
  EXPECT_NE(err.find("batch 32"), std::string::npos) << err;
  EXPECT_NE(train.stdout_text().find("(time limit)"), std::string::npos) << train.stdout_text();
}

// Flags of the built-in run do not mix with --config.
TEST(TrainSoloConfig, RefusesBuiltInRunFlags) {
  const auto dir = work_dir("refuse");
  Process train(
      {APIARY_BIN, "train", "--solo", "--config", write_config(dir).string(), "--epochs", "2"},
      dir / "out", dir / "err");
  const auto code = train.wait_for(20s);
  ASSERT_TRUE(code.has_value());
  EXPECT_NE(*code, 0);
  EXPECT_NE(train.stderr_text().find("excludes"), std::string::npos) << train.stderr_text();
}

// examples/custom_loop trains its own network through the embedding API.
TEST(CustomLoopExample, LossFallsAndAccuracyBeatsChance) {
  if (!have_data()) GTEST_SKIP() << "dataset-fashion-mnist is not installed";
  const auto dir = work_dir("custom");
  Process loop({CUSTOM_LOOP_BIN, "--epochs", "30"}, dir / "out", dir / "err");
  const auto code = loop.wait_for(100s);
  ASSERT_TRUE(code.has_value()) << "did not finish";
  ASSERT_EQ(*code, 0) << loop.stderr_text();
  const std::string out = loop.stdout_text();
  std::smatch m;
  ASSERT_TRUE(std::regex_search(
      out, m,
      std::regex(R"(final: epochs (\d+), loss ([0-9.]+) -> ([0-9.]+), test accuracy ([0-9.]+))")))
      << out;
  EXPECT_EQ(std::stoi(m[1]), 30);
  const double first_loss = std::stod(m[2]), last_loss = std::stod(m[3]);
  EXPECT_LT(last_loss, 0.7 * first_loss) << out;
  EXPECT_GT(std::stod(m[4]), 0.6) << "chance is 0.1\n" << out;
}

// Two custom_loop processes train together through a DHT node: every round is
// averaged, so both end with the same parameters (the same test accuracy).
TEST(CustomLoopExample, TwoProcessesTrainTogether) {
  if (!have_data()) GTEST_SKIP() << "dataset-fashion-mnist is not installed";
  const auto dir = work_dir("custom-swarm");
  Process dht({APIARY_BIN, "dht", "--listen", "127.0.0.1:0"}, dir / "dht.out", dir / "dht.err");
  ASSERT_TRUE(dht.wait_for_text("apiary://", 15s)) << dht.stderr_text();
  const std::string address = apiary::testing::first_address(dht.stdout_text());
  std::vector<std::unique_ptr<Process>> loops;
  for (int i = 0; i < 2; ++i) {
    const auto name = "loop" + std::to_string(i);
    loops.push_back(
        std::make_unique<Process>(std::vector<std::string>{CUSTOM_LOOP_BIN, "--peers", address,
                                                           "--run", "it-custom", "--epochs", "12"},
                                  dir / (name + ".out"), dir / (name + ".err")));
  }
  std::vector<std::string> accuracies;
  for (auto& loop : loops) {
    const auto code = loop->wait_for(120s);
    ASSERT_TRUE(code.has_value()) << "did not finish";
    ASSERT_EQ(*code, 0) << loop->stderr_text();
    const std::string out = loop->stdout_text();
    std::smatch m;
    ASSERT_TRUE(std::regex_search(out, m, std::regex(R"(test accuracy ([0-9.]+))"))) << out;
    EXPECT_GT(std::stod(m[1]), 0.4) << out;
    accuracies.push_back(m[1]);
    EXPECT_EQ(out.find("not averaged"), std::string::npos) << out;
  }
  EXPECT_EQ(accuracies[0], accuracies[1]) << "averaged every epoch: the same parameters";
}
