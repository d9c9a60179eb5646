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

// One test's run on loopback: a fresh folder with the run's configuration,
// its coordinator, and the `apiary join` peers the test starts (their output
// in DIR/<name>.out and DIR/<name>.err).
class TestRun {
 public:
  TestRun(const std::string& folder, std::string run, int state_every, double matchmaking)
      : dir_(fresh_work_dir(folder)), run_(std::move(run)) {
    write_config(dir_ / "run.json", run_, state_every, matchmaking);
  }
  const fs::path& dir() const { return dir_; }

  // Starts the coordinator (a previous one is gone first); a fatal failure
  // when it prints no address.
  void start_coordinator(std::vector<std::string> flags = {}) {
    coordinator_.reset();
    coordinator_.emplace(dir_, std::move(flags));
    ASSERT_FALSE(coordinator_->address().empty()) << coordinator_->process().stderr_text();
  }
  Coordinator& coordinator() { return *coordinator_; }
  const std::string& address() const { return coordinator_->address(); }

  // `apiary join --peers <coordinator> --run <run> [flags…]`.
  std::vector<std::string> join_args(std::vector<std::string> flags) const {
    std::vector<std::string> args{APIARY_BIN, "join", "--peers", address(), "--run", run_};
    args.insert(args.end(), flags.begin(), flags.end());
    return args;
  }
  std::unique_ptr<Process> join(const std::string& name, std::vector<std::string> flags) const {
    return std::make_unique<Process>(join_args(std::move(flags)), dir_ / (name + ".out"),
                                     dir_ / (name + ".err"));
  }

  // Stops the coordinator (a clean exit expected) and removes the folder.
  void finish() {
    coordinator_->stop();
    fs::remove_all(dir_);
  }

 private:
  fs::path dir_;
  std::string run_;
  std::optional<Coordinator> coordinator_;
};

// Waits up to `limit` for a peer to exit: a fatal failure while it still runs,
// a failure (with its stderr) unless it exited 0. Use with ASSERT_NO_FATAL_FAILURE.
void expect_clean_exit(Process& peer, std::chrono::seconds limit, const std::string& why = {}) {
  const auto code = peer.wait_for(limit);
  ASSERT_TRUE(code.has_value()) << (why.empty() ? "a peer did not exit" : why) << "\n"
                                << peer.stderr_text();
  EXPECT_EQ(*code, 0) << peer.stderr_text();
}

}  // namespace

// A peer stopped with SIGTERM finishes its step, writes a checkpoint and exits
// 0; restarted, it resumes at that epoch with the same parameters, then
// catches up with the peer that kept training, and both finish the run.
TEST(CheckpointProcesses, ResumesAfterSigtermAndCatchesUpWithTheSwarm) {
  TestRun run("resume", "it-resume", 2, 1.0);
  ASSERT_NO_FATAL_FAILURE(run.start_coordinator());
  const auto& dir = run.dir();
  auto a_flags = [&](const std::string& summary) {
    return std::vector<std::string>{"--identity",         (dir / "a.key").string(),
                                    "--checkpoint-dir",   (dir / "ck").string(),
                                    "--checkpoint-every", "2",
                                    "--max-epochs",       "14",
                                    "--time-limit",       "100",
                                    "--summary",          (dir / summary).string()};
  };
  auto a_first = run.join("a1", a_flags("a1.json"));
  auto b = run.join(
      "b", {"--max-epochs", "14", "--time-limit", "110", "--summary", (dir / "b.json").string()});

  // Wait for a periodic checkpoint and a few epochs, then stop the peer.
  bool ready = false;
  for (int i = 0; i < 900 && !ready && a_first->running(); ++i) {
    const auto log = a_first->stderr_text();
    ready = !checkpoints_written(log).empty() && progress_epoch(log) >= 3;
    if (!ready) std::this_thread::sleep_for(100ms);
  }
  ASSERT_TRUE(ready) << a_first->stderr_text();
  a_first->signal(SIGTERM);
  ASSERT_NO_FATAL_FAILURE(expect_clean_exit(*a_first, 30s, "SIGTERM did not stop the peer"));
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
  for (int i = 0; i < 600 && progress_epoch(b->stderr_text()) < static_cast<int>(last.epoch) + 2 &&
                  b->running();
       ++i)
    std::this_thread::sleep_for(100ms);
  ASSERT_GE(progress_epoch(b->stderr_text()), static_cast<int>(last.epoch) + 2) << b->stderr_text();

  auto a_again = run.join("a2", a_flags("a2.json"));
  for (auto* p : {a_again.get(), b.get()}) ASSERT_NO_FATAL_FAILURE(expect_clean_exit(*p, 120s));
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
  run.finish();
}

// The newest checkpoint is cut in half: the restarted peer says so, moves it
// aside and resumes from the previous one, bit for bit.
TEST(CheckpointProcesses, TruncatedNewestCheckpointFallsBackToPrevious) {
  TestRun run("truncated", "it-truncated", 1000, 0.3);
  ASSERT_NO_FATAL_FAILURE(run.start_coordinator());
  const auto& dir = run.dir();
  auto with = [&](std::vector<std::string> extra) {
    std::vector<std::string> flags{"--identity",
                                   (dir / "a.key").string(),
                                   "--checkpoint-dir",
                                   (dir / "ck").string(),
                                   "--checkpoint-every",
                                   "1",
                                   "--time-limit",
                                   "60",
                                   "--quiet"};
    flags.insert(flags.end(), extra.begin(), extra.end());
    return flags;
  };
  std::map<std::uint64_t, Written> by_epoch;
  {
    auto first = run.join("a1", with({"--max-epochs", "3"}));
    ASSERT_NO_FATAL_FAILURE(expect_clean_exit(*first, 90s));
    ASSERT_FALSE(HasFailure()) << "the first run must exit 0";
    for (const auto& w : checkpoints_written(first->stderr_text())) by_epoch[w.epoch] = w;
    ASSERT_TRUE(by_epoch.count(2) && by_epoch.count(3)) << first->stderr_text();
  }
  const fs::path newest = by_epoch[3].file;
  fs::resize_file(newest, fs::file_size(newest) / 2);

  auto second =
      run.join("a2", with({"--max-epochs", "2", "--summary", (dir / "a2.json").string()}));
  ASSERT_NO_FATAL_FAILURE(expect_clean_exit(*second, 60s));
  const auto log = second->stderr_text();
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
  run.finish();
}

// A checkpoint folder that cannot be created, and a disk that fills up
// (RLIMIT_FSIZE, with SIGXFSZ ignored, so writes fail with EFBIG): both peers
// say so clearly and train to the end anyway.
TEST(CheckpointProcesses, DiskTroubleIsReportedAndTrainingGoesOn) {
  TestRun run("disk", "it-disk", 1000, 0.5);
  ASSERT_NO_FATAL_FAILURE(run.start_coordinator());
  const auto& dir = run.dir();
  std::ofstream(dir / "a-file") << "not a folder";
  auto bad_dir =
      run.join("bad_dir", {"--checkpoint-dir", (dir / "a-file" / "ck").string(),
                           "--checkpoint-every", "1", "--max-epochs", "4", "--time-limit", "60",
                           "--quiet", "--summary", (dir / "bad_dir.json").string()});
  // Parameters and Adam statistics take ~600 KB; the limit is 256 KiB.
  std::string full_disk_command = "trap '' XFSZ; ulimit -f 256; exec";
  for (const auto& a : run.join_args(
           {"--checkpoint-dir", (dir / "full").string(), "--checkpoint-every", "1", "--max-epochs",
            "4", "--time-limit", "60", "--quiet", "--summary", (dir / "full.json").string()}))
    full_disk_command += " '" + a + "'";
  Process full_disk({"/bin/sh", "-c", full_disk_command}, dir / "full.out", dir / "full.err");
  for (auto* p : {bad_dir.get(), &full_disk}) ASSERT_NO_FATAL_FAILURE(expect_clean_exit(*p, 90s));
  const auto bad_log = bad_dir->stderr_text();
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
  run.finish();
}

// The coordinator keeps checkpoints of the swarm's state under the same rules
// and in the same format: written periodically and on SIGTERM, usable by a
// peer to resume from; a coordinator whose checkpoint folder cannot be
// created says so and serves the run anyway.
TEST(CheckpointProcesses, CoordinatorCheckpointsResumeAPeer) {
  TestRun run("coordinator-ck", "it-coord-ck", 2, 1.0);
  const auto& dir = run.dir();
  std::string last_hash;
  std::uint64_t last_epoch = 0;
  {
    ASSERT_NO_FATAL_FAILURE(run.start_coordinator(
        {"--checkpoint-dir", (dir / "swarm").string(), "--checkpoint-every", "2"}));
    auto& coordinator = run.coordinator();
    std::vector<std::unique_ptr<Process>> peers;
    for (const char* name : {"p1", "p2"})
      peers.push_back(run.join(name, {"--max-epochs", "12", "--time-limit", "90", "--quiet"}));
    ASSERT_TRUE(coordinator.process().wait_for_text("checkpoint of epoch", 90s, true))
        << coordinator.process().stderr_text();
    coordinator.stop();  // the final checkpoint is downloaded while the peers still train
    const auto written = checkpoints_written(coordinator.process().stderr_text());
    ASSERT_GE(written.size(), 1u) << coordinator.process().stderr_text();
    last_epoch = written.back().epoch;
    last_hash = written.back().hash;
    EXPECT_GE(last_epoch, 2u);
    // Training outlives the coordinator.
    for (auto& p : peers) ASSERT_NO_FATAL_FAILURE(expect_clean_exit(*p, 100s));
  }
  std::ofstream(dir / "a-file") << "not a folder";
  ASSERT_NO_FATAL_FAILURE(
      run.start_coordinator({"--checkpoint-dir", (dir / "a-file" / "ck").string()}));
  EXPECT_NE(run.coordinator().process().stderr_text().find("cannot create checkpoint folder"),
            std::string::npos)
      << run.coordinator().process().stderr_text();
  // A peer resumes from the coordinator's folder (nothing to train: it stops at that epoch).
  auto peer = run.join("resumed", {"--checkpoint-dir", (dir / "swarm").string(), "--max-epochs",
                                   std::to_string(last_epoch), "--quiet", "--summary",
                                   (dir / "resumed.json").string()});
  ASSERT_NO_FATAL_FAILURE(expect_clean_exit(*peer, 60s));
  auto resumed = resumed_from(peer->stderr_text());
  ASSERT_TRUE(resumed.has_value()) << peer->stderr_text();
  EXPECT_EQ(resumed->epoch, last_epoch);
  EXPECT_EQ(resumed->hash, last_hash);
  const auto summary = read_json(dir / "resumed.json");
  ASSERT_TRUE(summary.is_object());
  EXPECT_EQ(summary["parameters_hash"].get<std::string>(), last_hash);
  run.finish();
}
