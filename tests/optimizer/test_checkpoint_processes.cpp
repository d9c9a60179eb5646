// Checkpoints of real `apiary join` processes on loopback: written
// periodically and on SIGTERM, resumed on restart (then caught up with the
// swarm), a truncated newest one rejected for the previous one, and disk
// trouble that never stops training.
#include "tests/optimizer/process_util.hpp"

#include <nlohmann/json.hpp>

#include <gtest/gtest.h>

#include <map>
#include <regex>

using apiary::testing::Coordinator;
using apiary::testing::fresh_work_dir;
using apiary::testing::lines_with;
using apiary::testing::Process;
using apiary::testing::read_json;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

// `state_every` large: a peer alone does not wait for state averaging partners.
void write_config(const fs::path& file, const std::string& run, int state_every,
                  double matchmaking) {
  std::ofstream(file) << R"({"run": ")" << run << R"(", "target_batch_size": 512, "batch_size": 64,
    "model": {"hidden": [64], "seed": 5},
    "optimizer": {"name": "adam", "lr": 0.003},
    "averaging": {"average_state_every": )"
                      << state_every << R"(, "matchmaking_time": )" << matchmaking
                      << R"(, "averaging_timeout": 8.0}})";
}

struct Written {
  std::uint64_t epoch = 0;
  std::string file;
  std::string hash;
};

// "checkpoint of epoch E written to FILE (parameters hash H)" lines, in order.
std::vector<Written> checkpoints_written(const std::string& log) {
  static const std::regex line(
      R"(checkpoint of epoch (\d+) written to (\S+) \(parameters hash ([0-9a-f]{64})\))");
  std::vector<Written> out;
  for (const auto& l : lines_with(log, "written to")) {
    std::smatch m;
    if (std::regex_search(l, m, line)) out.push_back({std::stoull(m[1]), m[2], m[3]});
  }
  return out;
}

// "resuming from checkpoint FILE (epoch E, parameters hash H)"
std::optional<Written> resumed_from(const std::string& log) {
  static const std::regex line(
      R"(resuming from checkpoint (\S+) \(epoch (\d+), parameters hash ([0-9a-f]{64})\))");
  std::smatch m;
  if (!std::regex_search(log, m, line)) return std::nullopt;
  return Written{std::stoull(m[2]), m[1], m[3]};
}

// Highest "epoch N |" progress line a peer printed so far.
int progress_epoch(const std::string& log) {
  static const std::regex line(R"(epoch +(\d+) \|)");
  int best = -1;
  for (auto it = std::sregex_iterator(log.begin(), log.end(), line); it != std::sregex_iterator();
       ++it)
    best = std::max(best, std::stoi((*it)[1]));
  return best;
}

std::vector<std::string> join_args(const std::string& address, const std::string& run,
                                   std::vector<std::string> extra) {
  std::vector<std::string> args{APIARY_BIN, "join", "--peers", address, "--run", run};
  args.insert(args.end(), extra.begin(), extra.end());
  return args;
}

}  // namespace

// A peer stopped with SIGTERM finishes its step, writes a checkpoint and exits
// 0; restarted, it resumes at that epoch with the same parameters, then
// catches up with the peer that kept training, and both finish the run.
TEST(CheckpointProcesses, ResumesAfterSigtermAndCatchesUpWithTheSwarm) {
  const auto dir = fresh_work_dir("resume");
  write_config(dir / "run.json", "it-resume", 2, 1.0);
  Coordinator coordinator(dir);
  const std::string address = coordinator.address();
  ASSERT_FALSE(address.empty()) << coordinator.process().stderr_text();
  const std::vector<std::string> a_flags{"--identity",         (dir / "a.key").string(),
                                         "--checkpoint-dir",   (dir / "ck").string(),
                                         "--checkpoint-every", "2",
                                         "--max-epochs",       "14",
                                         "--time-limit",       "100"};
  auto a_first = std::make_unique<Process>(
      join_args(address, "it-resume",
                [&] {
                  auto f = a_flags;
                  f.insert(f.end(), {"--summary", (dir / "a1.json").string()});
                  return f;
                }()),
      dir / "a1.out", dir / "a1.err");
  Process b(join_args(address, "it-resume",
                      {"--max-epochs", "14", "--time-limit", "110", "--summary",
                       (dir / "b.json").string()}),
            dir / "b.out", dir / "b.err");

  // Wait for a periodic checkpoint and a few epochs, then stop the peer.
  bool ready = false;
  for (int i = 0; i < 900 && !ready && a_first->running(); ++i) {
    const auto log = a_first->stderr_text();
    ready = !checkpoints_written(log).empty() && progress_epoch(log) >= 3;
    if (!ready) std::this_thread::sleep_for(100ms);
  }
  ASSERT_TRUE(ready) << a_first->stderr_text();
  a_first->signal(SIGTERM);
  auto code = a_first->wait_for(30s);
  ASSERT_TRUE(code.has_value()) << "SIGTERM did not stop the peer";
  EXPECT_EQ(*code, 0) << a_first->stderr_text();
  const auto first_log = a_first->stderr_text();
  const auto written = checkpoints_written(first_log);
  ASSERT_GE(written.size(), 2u) << "expected a periodic and an exit checkpoint:\n" << first_log;
  const Written last = written.back();
  const auto a1 = read_json(dir / "a1.json");
  ASSERT_TRUE(a1.is_object());
  EXPECT_GE(last.epoch, 3u);
  EXPECT_EQ(last.epoch, a1["epochs"].get<std::uint64_t>()) << "exit checkpoint is not the end";
  EXPECT_EQ(last.hash, a1["parameters_hash"].get<std::string>());
  EXPECT_TRUE(fs::exists(last.file));

  // Let the swarm move on without the stopped peer before it comes back.
  for (int i = 0;
       i < 600 && progress_epoch(b.stderr_text()) < static_cast<int>(last.epoch) + 2 && b.running();
       ++i)
    std::this_thread::sleep_for(100ms);
  ASSERT_GE(progress_epoch(b.stderr_text()), static_cast<int>(last.epoch) + 2) << b.stderr_text();

  auto a_again = std::make_unique<Process>(
      join_args(address, "it-resume",
                [&] {
                  auto f = a_flags;
                  f.insert(f.end(), {"--summary", (dir / "a2.json").string()});
                  return f;
                }()),
      dir / "a2.out", dir / "a2.err");
  for (auto* p : {a_again.get(), &b}) {
    auto done = p->wait_for(120s);
    ASSERT_TRUE(done.has_value()) << p->stderr_text();
    EXPECT_EQ(*done, 0) << p->stderr_text();
  }
  const auto again_log = a_again->stderr_text();
  auto resumed = resumed_from(again_log);
  ASSERT_TRUE(resumed.has_value()) << again_log;
  EXPECT_EQ(resumed->epoch, last.epoch) << again_log;
  EXPECT_EQ(resumed->hash, last.hash) << "resumed parameters differ from those written";
  EXPECT_NE(again_log.find("resumed at epoch " + std::to_string(last.epoch)), std::string::npos)
      << again_log;
  // The swarm moved on meanwhile: the restarted peer takes the newer state.
  static const std::regex loaded(R"(loaded state of epoch (\d+) from peers)");
  std::smatch m;
  ASSERT_TRUE(std::regex_search(again_log, m, loaded)) << again_log;
  EXPECT_GT(std::stoull(m[1]), last.epoch);
  for (const char* name : {"a2", "b"}) {
    auto s = read_json(dir / (std::string(name) + ".json"));
    ASSERT_TRUE(s.is_object()) << name;
    EXPECT_EQ(s["epochs"].get<int>(), 14) << name;
  }
  coordinator.stop();
  fs::remove_all(dir);
}

// The newest checkpoint is cut in half: the restarted peer says so, moves it
// aside and resumes from the previous one, bit for bit.
TEST(CheckpointProcesses, TruncatedNewestCheckpointFallsBackToPrevious) {
  const auto dir = fresh_work_dir("truncated");
  write_config(dir / "run.json", "it-truncated", 1000, 0.3);
  Coordinator coordinator(dir);
  const std::string address = coordinator.address();
  ASSERT_FALSE(address.empty()) << coordinator.process().stderr_text();
  const std::vector<std::string> flags{"--identity",
                                       (dir / "a.key").string(),
                                       "--checkpoint-dir",
                                       (dir / "ck").string(),
                                       "--checkpoint-every",
                                       "1",
                                       "--time-limit",
                                       "60",
                                       "--quiet"};
  auto with = [&](std::vector<std::string> extra) {
    auto f = flags;
    f.insert(f.end(), extra.begin(), extra.end());
    return join_args(address, "it-truncated", f);
  };
  std::map<std::uint64_t, Written> by_epoch;
  {
    Process first(with({"--max-epochs", "3"}), dir / "a1.out", dir / "a1.err");
    auto code = first.wait_for(90s);
    ASSERT_TRUE(code.has_value());
    ASSERT_EQ(*code, 0) << first.stderr_text();
    for (const auto& w : checkpoints_written(first.stderr_text())) by_epoch[w.epoch] = w;
    ASSERT_TRUE(by_epoch.count(2) && by_epoch.count(3)) << first.stderr_text();
  }
  const fs::path newest = by_epoch[3].file;
  fs::resize_file(newest, fs::file_size(newest) / 2);

  Process second(with({"--max-epochs", "2", "--summary", (dir / "a2.json").string()}),
                 dir / "a2.out", dir / "a2.err");
  auto code = second.wait_for(60s);
  ASSERT_TRUE(code.has_value());
  EXPECT_EQ(*code, 0) << second.stderr_text();
  const auto log = second.stderr_text();
  const auto rejected = lines_with(log, "ckpt-0000000003.apiary rejected");
  ASSERT_EQ(rejected.size(), 1u) << log;
  EXPECT_NE(rejected[0].find("hash mismatch"), std::string::npos) << rejected[0];
  EXPECT_NE(rejected[0].find("trying the previous one"), std::string::npos) << rejected[0];
  EXPECT_FALSE(fs::exists(newest)) << "the corrupt file should be moved aside";
  EXPECT_TRUE(fs::exists(newest.string() + ".rejected"));
  auto resumed = resumed_from(log);
  ASSERT_TRUE(resumed.has_value()) << log;
  EXPECT_EQ(resumed->epoch, 2u);
  EXPECT_EQ(resumed->hash, by_epoch[2].hash);
  const auto summary = read_json(dir / "a2.json");
  ASSERT_TRUE(summary.is_object());
  EXPECT_EQ(summary["epochs"].get<int>(), 2);
  EXPECT_EQ(summary["parameters_hash"].get<std::string>(), by_epoch[2].hash);
  coordinator.stop();
  fs::remove_all(dir);
}

// A checkpoint folder that cannot be created, and a disk that fills up
// (RLIMIT_FSIZE, with SIGXFSZ ignored, so writes fail with EFBIG): both peers
// say so clearly and train to the end anyway.
TEST(CheckpointProcesses, DiskTroubleIsReportedAndTrainingGoesOn) {
  const auto dir = fresh_work_dir("disk");
  write_config(dir / "run.json", "it-disk", 1000, 0.5);
  Coordinator coordinator(dir);
  const std::string address = coordinator.address();
  ASSERT_FALSE(address.empty()) << coordinator.process().stderr_text();
  std::ofstream(dir / "a-file") << "not a folder";
  Process bad_dir(join_args(address, "it-disk",
                            {"--checkpoint-dir", (dir / "a-file" / "ck").string(),
                             "--checkpoint-every", "1", "--max-epochs", "4", "--time-limit", "60",
                             "--quiet", "--summary", (dir / "bad_dir.json").string()}),
                  dir / "bad_dir.out", dir / "bad_dir.err");
  // Parameters and Adam statistics take ~600 KB; the limit is 256 KiB.
  std::string full_disk_command = "trap '' XFSZ; ulimit -f 256; exec";
  for (const auto& a : join_args(
           address, "it-disk",
           {"--checkpoint-dir", (dir / "full").string(), "--checkpoint-every", "1", "--max-epochs",
            "4", "--time-limit", "60", "--quiet", "--summary", (dir / "full.json").string()}))
    full_disk_command += " '" + a + "'";
  Process full_disk({"/bin/sh", "-c", full_disk_command}, dir / "full.out", dir / "full.err");
  for (auto* p : {&bad_dir, &full_disk}) {
    auto code = p->wait_for(90s);
    ASSERT_TRUE(code.has_value()) << p->stderr_text();
    EXPECT_EQ(*code, 0) << p->stderr_text();
  }
  const auto bad_log = bad_dir.stderr_text();
  EXPECT_NE(bad_log.find("cannot create checkpoint folder"), std::string::npos) << bad_log;
  EXPECT_NE(bad_log.find("training goes on"), std::string::npos) << bad_log;
  const auto full_log = full_disk.stderr_text();
  const auto failed = lines_with(full_log, "NOT written");
  ASSERT_FALSE(failed.empty()) << full_log;
  EXPECT_NE(failed[0].find("File too large"), std::string::npos) << failed[0];
  std::size_t leftovers = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir / "full")) ++leftovers;
  EXPECT_EQ(leftovers, 0u) << "partial checkpoint files left behind";
  for (const char* name : {"bad_dir", "full"}) {
    auto s = read_json(dir / (std::string(name) + ".json"));
    ASSERT_TRUE(s.is_object()) << name;
    EXPECT_EQ(s["epochs"].get<int>(), 4) << name;
  }
  coordinator.stop();
  fs::remove_all(dir);
}

// The coordinator keeps checkpoints of the swarm's state under the same rules
// and in the same format: written periodically and on SIGTERM, usable by a
// peer to resume from; a coordinator whose checkpoint folder cannot be
// created says so and serves the run anyway.
TEST(CheckpointProcesses, CoordinatorCheckpointsResumeAPeer) {
  const auto dir = fresh_work_dir("coordinator-ck");
  write_config(dir / "run.json", "it-coord-ck", 2, 1.0);
  std::string last_hash;
  std::uint64_t last_epoch = 0;
  {
    Coordinator coordinator(
        dir, {"--checkpoint-dir", (dir / "swarm").string(), "--checkpoint-every", "2"});
    const std::string address = coordinator.address();
    ASSERT_FALSE(address.empty()) << coordinator.process().stderr_text();
    std::vector<std::unique_ptr<Process>> peers;
    for (const char* name : {"p1", "p2"})
      peers.push_back(std::make_unique<Process>(
          join_args(address, "it-coord-ck",
                    {"--max-epochs", "12", "--time-limit", "90", "--quiet"}),
          dir / (std::string(name) + ".out"), dir / (std::string(name) + ".err")));
    ASSERT_TRUE(coordinator.process().wait_for_text("checkpoint of epoch", 90s, true))
        << coordinator.process().stderr_text();
    coordinator.stop();  // the final checkpoint is downloaded while the peers still train
    const auto written = checkpoints_written(coordinator.process().stderr_text());
    ASSERT_GE(written.size(), 1u) << coordinator.process().stderr_text();
    last_epoch = written.back().epoch;
    last_hash = written.back().hash;
    EXPECT_GE(last_epoch, 2u);
    for (auto& p : peers) {
      auto code = p->wait_for(100s);
      ASSERT_TRUE(code.has_value());
      EXPECT_EQ(*code, 0) << p->stderr_text();  // training outlives the coordinator
    }
  }
  std::ofstream(dir / "a-file") << "not a folder";
  Coordinator coordinator(dir, {"--checkpoint-dir", (dir / "a-file" / "ck").string()});
  const std::string address = coordinator.address();
  ASSERT_FALSE(address.empty()) << coordinator.process().stderr_text();
  EXPECT_NE(coordinator.process().stderr_text().find("cannot create checkpoint folder"),
            std::string::npos)
      << coordinator.process().stderr_text();
  // A peer resumes from the coordinator's folder (nothing to train: it stops at that epoch).
  Process peer(join_args(address, "it-coord-ck",
                         {"--checkpoint-dir", (dir / "swarm").string(), "--max-epochs",
                          std::to_string(last_epoch), "--quiet", "--summary",
                          (dir / "resumed.json").string()}),
               dir / "resumed.out", dir / "resumed.err");
  auto code = peer.wait_for(60s);
  ASSERT_TRUE(code.has_value());
  EXPECT_EQ(*code, 0) << peer.stderr_text();
  auto resumed = resumed_from(peer.stderr_text());
  ASSERT_TRUE(resumed.has_value()) << peer.stderr_text();
  EXPECT_EQ(resumed->epoch, last_epoch);
  EXPECT_EQ(resumed->hash, last_hash);
  const auto summary = read_json(dir / "resumed.json");
  ASSERT_TRUE(summary.is_object());
  EXPECT_EQ(summary["parameters_hash"].get<std::string>(), last_hash);
  coordinator.stop();
  fs::remove_all(dir);
}
