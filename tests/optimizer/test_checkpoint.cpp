#include "optimizer/checkpoint.hpp"
#include "optimizer/state_checkpoints.hpp"
#include "optimizer/state_validation.hpp"

#include "core/error.hpp"

#include <gtest/gtest.h>

#include <limits>

#include <sys/resource.h>
#include <csignal>
#include <fstream>
#include <random>

using namespace apiary;
using namespace apiary::optimizer;
namespace fs = std::filesystem;

namespace {

fs::path fresh_dir(const std::string& name) {
  fs::path dir =
      fs::temp_directory_path() / ("apiary-test-" + name + "-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

Checkpoint make_checkpoint(std::uint64_t epoch, std::size_t n = 1000) {
  Checkpoint ck;
  ck.epoch = epoch;
  ck.metadata_json = R"({"run":"test","epoch":)" + std::to_string(epoch) + "}";
  std::mt19937 rng(static_cast<unsigned>(epoch));
  std::normal_distribution<float> dist;
  NamedTensor w{"layer0.weight", {n / 10, 10}, std::vector<float>(n)};
  for (auto& x : w.data) x = dist(rng);
  ck.tensors.push_back(std::move(w));
  ck.tensors.push_back({"layer0.bias", {10}, std::vector<float>(10, static_cast<float>(epoch))});
  return ck;
}

void expect_same(const Checkpoint& a, const Checkpoint& b) {
  EXPECT_EQ(a.epoch, b.epoch);
  EXPECT_EQ(a.metadata_json, b.metadata_json);
  ASSERT_EQ(a.tensors.size(), b.tensors.size());
  for (std::size_t i = 0; i < a.tensors.size(); ++i) {
    EXPECT_EQ(a.tensors[i].name, b.tensors[i].name);
    EXPECT_EQ(a.tensors[i].shape, b.tensors[i].shape);
    EXPECT_EQ(a.tensors[i].data, b.tensors[i].data);
  }
}

}  // namespace

TEST(Checkpoint, RoundTrip) {
  auto dir = fresh_dir("roundtrip");
  auto ck = make_checkpoint(7);
  write_checkpoint(dir / "a.apiary", ck);
  expect_same(read_checkpoint(dir / "a.apiary"), ck);
  fs::remove_all(dir);
}

TEST(Checkpoint, EmptyTensorRoundTrips) {  // fuzz finding: memcpy from a null data()
  auto dir = fresh_dir("empty");
  Checkpoint ck = make_checkpoint(3);
  ck.tensors.push_back({"empty", {0, 4}, {}});
  write_checkpoint(dir / "a.apiary", ck);
  expect_same(read_checkpoint(dir / "a.apiary"), ck);
  fs::remove_all(dir);
}

TEST(Checkpoint, ShapeMismatchRefused) {
  auto dir = fresh_dir("shape");
  Checkpoint ck;
  ck.tensors.push_back({"bad", {3, 3}, std::vector<float>(8)});
  try {
    write_checkpoint(dir / "bad.apiary", ck);
    FAIL() << "expected invalid_argument";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::invalid_argument);
  }
  EXPECT_FALSE(fs::exists(dir / "bad.apiary"));
  fs::remove_all(dir);
}

TEST(Checkpoint, CorruptByteDetected) {
  auto dir = fresh_dir("corrupt");
  write_checkpoint(dir / "c.apiary", make_checkpoint(1));
  {
    std::fstream f(dir / "c.apiary", std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(100);
    char c = 0;
    f.read(&c, 1);
    f.seekp(100);
    c ^= 0x40;
    f.write(&c, 1);
  }
  try {
    read_checkpoint(dir / "c.apiary");
    FAIL() << "expected bad_message";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::bad_message);
    EXPECT_NE(std::string(e.what()).find("hash mismatch"), std::string::npos) << e.what();
  }
  fs::remove_all(dir);
}

TEST(CheckpointDir, TruncatedNewestFallsBackToPrevious) {
  auto dir = fresh_dir("truncated");
  CheckpointDir ckdir(dir);
  auto older = make_checkpoint(4);
  ckdir.save(older);
  auto newest_path = ckdir.save(make_checkpoint(5));
  fs::resize_file(newest_path, fs::file_size(newest_path) / 2);
  auto loaded = ckdir.load_latest();
  ASSERT_TRUE(loaded.has_value());
  expect_same(*loaded, older);
  fs::remove_all(dir);
}

TEST(CheckpointDir, KeepsOnlyNewest) {
  auto dir = fresh_dir("keep");
  CheckpointDir ckdir(dir, 2);
  for (std::uint64_t e = 1; e <= 5; ++e) ckdir.save(make_checkpoint(e, 100));
  auto files = ckdir.list();
  ASSERT_EQ(files.size(), 2u);
  EXPECT_EQ(files[0].filename(), "ckpt-0000000005.apiary");
  EXPECT_EQ(files[1].filename(), "ckpt-0000000004.apiary");
  EXPECT_EQ(ckdir.load_latest()->epoch, 5u);
  fs::remove_all(dir);
}

TEST(CheckpointDir, EmptyFolderHasNoCheckpoint) {
  auto dir = fresh_dir("empty");
  EXPECT_FALSE(CheckpointDir(dir).load_latest().has_value());
  fs::remove_all(dir);
}

// A full disk (simulated with RLIMIT_FSIZE) fails the save with io_error,
// leaves no temporary file, and keeps the previous checkpoint loadable.
TEST(CheckpointDir, FullDiskKeepsPreviousCheckpoint) {
  auto dir = fresh_dir("full");
  CheckpointDir ckdir(dir);
  auto small = make_checkpoint(1, 100);
  ckdir.save(small);

  auto old_handler = std::signal(SIGXFSZ, SIG_IGN);
  rlimit old_limit{};
  ASSERT_EQ(getrlimit(RLIMIT_FSIZE, &old_limit), 0);
  rlimit limited = old_limit;
  limited.rlim_cur = 4096;
  ASSERT_EQ(setrlimit(RLIMIT_FSIZE, &limited), 0);
  bool threw_io = false;
  try {
    ckdir.save(make_checkpoint(2, 100000));  // ~400 KB > 4 KiB limit
  } catch (const Error& e) {
    threw_io = e.code() == Errc::io_error;
  }
  ASSERT_EQ(setrlimit(RLIMIT_FSIZE, &old_limit), 0);
  std::signal(SIGXFSZ, old_handler);

  EXPECT_TRUE(threw_io);
  std::size_t entries = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir)) ++entries;
  EXPECT_EQ(entries, 1u) << "temporary file left behind";
  auto loaded = ckdir.load_latest();
  ASSERT_TRUE(loaded.has_value());
  expect_same(*loaded, small);
  fs::remove_all(dir);
}

// ---- StateCheckpoints: a peer's training state, as `apiary join` keeps it.

namespace {

StateSnapshot make_state(std::uint64_t epoch, float value) {
  StateSnapshot s;
  s.epoch = epoch;
  s.optimizer_steps = epoch * 10;
  s.tensors = {std::vector<float>(50, value), std::vector<float>(50, -value)};
  return s;
}

}  // namespace

TEST(StateCheckpoints, RoundTripKeepsEpochTensorsAndSteps) {
  auto dir = fresh_dir("state-roundtrip");
  StateCheckpoints ck(dir, "run-a", R"({"run":"run-a"})");
  ASSERT_TRUE(ck.save(make_state(4, 1.5f)));
  StateCheckpoints reopened(dir, "run-a");
  auto loaded = reopened.load_latest();
  ASSERT_TRUE(loaded.has_value());
  EXPECT_EQ(loaded->epoch, 4u);
  EXPECT_EQ(loaded->optimizer_steps, 40u);
  EXPECT_EQ(loaded->tensors, make_state(4, 1.5f).tensors);
  EXPECT_EQ(reopened.last_epoch(), 4u);
  fs::remove_all(dir);
}

// A newer checkpoint of another run in the same folder is skipped (and left
// in place: it is not corrupt), the run's own older one is used.
TEST(StateCheckpoints, AnotherRunsCheckpointIsSkipped) {
  auto dir = fresh_dir("state-foreign");
  StateCheckpoints(dir, "mine").save(make_state(2, 1.0f));
  StateCheckpoints(dir, "theirs").save(make_state(9, 2.0f));
  auto loaded = StateCheckpoints(dir, "mine").load_latest();
  ASSERT_TRUE(loaded.has_value());
  EXPECT_EQ(loaded->epoch, 2u);
  EXPECT_TRUE(fs::exists(dir / "ckpt-0000000009.apiary"));
  fs::remove_all(dir);
}

TEST(StateCheckpoints, CorruptNewestIsMovedAside) {
  auto dir = fresh_dir("state-corrupt");
  StateCheckpoints ck(dir, "run");
  ck.save(make_state(1, 1.0f));
  ck.save(make_state(2, 2.0f));
  fs::resize_file(dir / "ckpt-0000000002.apiary", 100);
  auto loaded = StateCheckpoints(dir, "run").load_latest();
  ASSERT_TRUE(loaded.has_value());
  EXPECT_EQ(loaded->epoch, 1u);
  EXPECT_FALSE(fs::exists(dir / "ckpt-0000000002.apiary"));
  EXPECT_TRUE(fs::exists(dir / "ckpt-0000000002.apiary.rejected"));
  fs::remove_all(dir);
}

// A poisoned state (a NaN from a donor or a bad step) is never written, and a
// file holding one is never resumed from: the previous checkpoint is used.
TEST(StateCheckpoints, NonFiniteStatesAreNeitherWrittenNorResumed) {
  auto dir = fresh_dir("state-nonfinite");
  StateCheckpoints ck(dir, "run");
  ASSERT_TRUE(ck.save(make_state(1, 1.0f)));
  StateSnapshot poisoned = make_state(2, 2.0f);
  poisoned.tensors[1][7] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_FALSE(ck.save(poisoned));
  EXPECT_FALSE(fs::exists(dir / "ckpt-0000000002.apiary"));
  // Written behind StateCheckpoints' back (an older binary, another tool).
  poisoned.tensors[1][7] = std::numeric_limits<float>::infinity();
  CheckpointDir(dir).save(checkpoint_from_state(poisoned, R"({"run":"run"})"));
  ASSERT_TRUE(fs::exists(dir / "ckpt-0000000002.apiary"));
  auto loaded = StateCheckpoints(dir, "run").load_latest();
  ASSERT_TRUE(loaded.has_value());
  EXPECT_EQ(loaded->epoch, 1u);
  EXPECT_THROW(require_finite(poisoned), apiary::Error);
  EXPECT_NO_THROW(require_finite(make_state(3, 3.0f)));
  fs::remove_all(dir);
}

// A folder that cannot be created: no exception, save() says false, and a
// later save() retries (here it still fails).
TEST(StateCheckpoints, UncreatableFolderNeverThrows) {
  auto dir = fresh_dir("state-uncreatable");
  std::ofstream(dir / "file") << "x";
  StateCheckpoints ck(dir / "file" / "ck", "run");
  EXPECT_FALSE(ck.load_latest().has_value());
  EXPECT_FALSE(ck.save(make_state(1, 1.0f)));
  EXPECT_FALSE(ck.save(make_state(2, 1.0f)));
  EXPECT_EQ(ck.last_epoch(), 0u);
  fs::remove_all(dir);
}
