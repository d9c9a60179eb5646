// Real `apiary coordinator` and `apiary join` processes on loopback: a token
// run that refuses non-members, a 3× slower peer that contributes without
// holding the others back, and local-update mode (DiLoCo) on Fashion-MNIST.
#include "tests/optimizer/process_util.hpp"

#include <nlohmann/json.hpp>

#include <gtest/gtest.h>

#include <iostream>

using apiary::testing::Coordinator;
using apiary::testing::fresh_work_dir;
using apiary::testing::Process;
using apiary::testing::read_json;
using apiary::testing::run_to_end;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

std::string trimmed(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  return s;
}

std::unique_ptr<Process> join(const fs::path& dir, const std::string& name,
                              const std::string& address, const std::string& run,
                              std::vector<std::string> extra) {
  std::vector<std::string> args{APIARY_BIN, "join", "--peers",   address,
                                "--run",    run,    "--summary", (dir / (name + ".json")).string()};
  args.insert(args.end(), extra.begin(), extra.end());
  return std::make_unique<Process>(args, dir / (name + ".out"), dir / (name + ".err"));
}

}  // namespace

// In a run with --auth token, members with a token issued by the run key
// train; a peer without a token, with a token for another run, with one
// signed by another key, or with another peer's token is refused with a
// clear error, and the members finish undisturbed.
TEST(SwarmProcesses, TokenRunAdmitsMembersOnly) {
  const auto dir = fresh_work_dir("token");
  std::ofstream(dir / "run.json") << R"({"run": "it-token", "target_batch_size": 512,
    "batch_size": 64, "model": {"hidden": [64], "seed": 3},
    "optimizer": {"name": "adam", "lr": 0.003},
    "averaging": {"average_state_every": 2, "matchmaking_time": 1.0, "averaging_timeout": 8.0}})";
  auto keygen = [&](const std::string& name) {
    return trimmed(run_to_end({APIARY_BIN, "keygen", "--out", (dir / (name + ".key")).string()},
                              dir, "keygen-" + name));
  };
  auto token = [&](const std::string& run, const std::string& signer, const std::string& peer_id,
                   const std::string& name) {
    run_to_end({APIARY_BIN, "coordinator", "token", "--run", run, "--identity",
                (dir / (signer + ".key")).string(), "--for", peer_id, "--out",
                (dir / (name + ".tok")).string()},
               dir, "token-" + name);
  };
  keygen("run");
  keygen("impostor");  // a key that is not the run's
  for (const char* member : {"m1", "m2"}) token("it-token", "run", keygen(member), member);
  token("other-run", "run", keygen("wrong_run"), "wrong_run");
  token("it-token", "impostor", keygen("forged"), "forged");
  keygen("no_token");
  keygen("thief");

  Coordinator coordinator(dir, {"--auth", "token", "--identity", (dir / "run.key").string()});
  const std::string address = coordinator.address();
  ASSERT_FALSE(address.empty()) << coordinator.process().stderr_text();
  auto member = [&](const std::string& name) {
    return join(dir, name, address, "it-token",
                {"--identity", (dir / (name + ".key")).string(), "--token",
                 (dir / (name + ".tok")).string(), "--time-limit", "100"});
  };
  auto m1 = member("m1");
  auto m2 = member("m2");
  ASSERT_TRUE(m1->wait_for_text("epoch    2 ", 60s, /*in_stderr=*/true)) << m1->stderr_text();

  // Non-members knock while the members train.
  struct Intruder {
    std::string name;
    std::vector<std::string> flags;
    std::string expected;  // in the error message
    std::string via;       // the peer it dials
  };
  // Every member refuses non-members too, not only the coordinator.
  const auto m1_log = m1->stderr_text();
  const auto joined = m1_log.find("joined as ");
  ASSERT_NE(joined, std::string::npos) << m1_log;
  const std::string m1_address = apiary::testing::first_address(m1_log.substr(joined));
  ASSERT_FALSE(m1_address.empty());
  const std::vector<Intruder> intruders{
      {"no_token", {}, "admits only members", address},
      {"no_token_via_member", {}, "admits only members", m1_address},
      {"wrong_run", {"--token", (dir / "wrong_run.tok").string()}, "is not valid for run", address},
      {"wrong_run_via_member",
       {"--token", (dir / "wrong_run.tok").string()},
       "is not valid for run",
       m1_address},
      {"forged", {"--token", (dir / "forged.tok").string()}, "is not valid for run", address},
      {"thief", {"--token", (dir / "m1.tok").string()}, "was issued for peer", address},
  };
  std::vector<std::unique_ptr<Process>> refused;
  for (const auto& i : intruders) {
    auto flags = i.flags;
    const std::string key = i.name.substr(0, i.name.find("_via_"));
    flags.insert(flags.end(), {"--identity", (dir / (key + ".key")).string(), "--max-epochs", "8"});
    refused.push_back(join(dir, i.name, i.via, "it-token", flags));
  }
  for (std::size_t k = 0; k < intruders.size(); ++k) {
    auto code = refused[k]->wait_for(45s);
    ASSERT_TRUE(code.has_value()) << intruders[k].name << " was not refused in time";
    EXPECT_NE(*code, 0) << intruders[k].name;
    const auto err = refused[k]->stderr_text();
    EXPECT_NE(err.find(intruders[k].expected), std::string::npos) << intruders[k].name << ":\n"
                                                                  << err;
    EXPECT_EQ(err.find("epoch    1 "), std::string::npos) << intruders[k].name << " trained";
  }
  // The refusals were answered by live members (the test is void otherwise);
  // they trained on meanwhile and stop cleanly.
  for (auto* p : {m1.get(), m2.get()}) {
    ASSERT_TRUE(p->running()) << p->stderr_text();
    p->signal(SIGTERM);
  }
  for (auto* p : {m1.get(), m2.get()}) {
    auto code = p->wait_for(30s);
    ASSERT_TRUE(code.has_value()) << p->stderr_text();
    EXPECT_EQ(*code, 0) << p->stderr_text();
  }
  for (const char* name : {"m1", "m2"}) {
    auto s = read_json(dir / (std::string(name) + ".json"));
    ASSERT_TRUE(s.is_object()) << name;
    const int epochs = s["epochs"].get<int>();
    EXPECT_GE(epochs, 4) << name;
    EXPECT_GE(s["averaged_rounds"].get<int>(), epochs * 7 / 10)
        << name << ": members did not average together " << s.dump();
  }
  coordinator.stop();
  fs::remove_all(dir);
}

// Two peers and one 3× slower (--step-delay): the slow peer never holds the
// others back — an epoch ends when the swarm as a whole has the target batch,
// so the fast peers keep their own pace and deliver ~3× its samples — and the
// slow peer's samples go into every averaged round.
TEST(SwarmProcesses, SlowPeerContributesWithoutBlocking) {
  const auto dir = fresh_work_dir("slow");
  constexpr double target = 8192;
  std::ofstream(dir / "run.json") << R"({"run": "it-slow", "target_batch_size": 8192,
    "batch_size": 32, "model": {"hidden": [64], "seed": 3},
    "optimizer": {"name": "adam", "lr": 0.002},
    "averaging": {"average_state_every": 4, "matchmaking_time": 1.0, "averaging_timeout": 8.0}})";
  Coordinator coordinator(dir);
  const std::string address = coordinator.address();
  ASSERT_FALSE(address.empty()) << coordinator.process().stderr_text();
  // Sleeps dominate a 32-sample step (~2 ms of compute), so the slow one is ~3× slower.
  auto peer = [&](const std::string& name, const char* delay) {
    return join(dir, name, address, "it-slow",
                {"--step-delay", delay, "--max-epochs", "6", "--time-limit", "90"});
  };
  auto fast1 = peer("fast1", "0.02");
  auto fast2 = peer("fast2", "0.02");
  auto slow = peer("slow", "0.07");
  for (auto* p : {fast1.get(), fast2.get(), slow.get()}) {
    auto code = p->wait_for(120s);
    ASSERT_TRUE(code.has_value()) << p->stderr_text();
    EXPECT_EQ(*code, 0) << p->stderr_text();
  }
  const auto s = read_json(dir / "slow.json");
  ASSERT_TRUE(s.is_object());
  const double slow_rate = s["samples_per_s"].get<double>();
  const auto slow_samples = s["local_samples"].get<double>();
  double total_samples = slow_samples;
  for (const char* name : {"fast1", "fast2"}) {
    const auto f = read_json(dir / (std::string(name) + ".json"));
    ASSERT_TRUE(f.is_object()) << name;
    const auto epochs = f["epochs"].get<double>();
    ASSERT_EQ(epochs, 6) << name;
    total_samples += f["local_samples"].get<double>();
    // The premise: the slow peer really is much slower.
    ASSERT_LT(slow_rate, 0.5 * f["samples_per_s"].get<double>()) << name << " " << f.dump();
    // Not throttled to the slow pace: a lockstep swarm would take equal shares (ratio 1).
    EXPECT_GE(f["local_samples"].get<double>(), 2.0 * slow_samples) << name << " " << f.dump();
    // Epoch rate: if every peer had to deliver an equal share at the slow
    // peer's pace, an epoch would take (target / 3) / slow_rate.
    const double lockstep_epoch = target / 3 / slow_rate;
    const double epoch_seconds = f["seconds"].get<double>() / epochs;
    EXPECT_LT(epoch_seconds, lockstep_epoch / 1.5)
        << name << ": epoch " << epoch_seconds << " s, lockstep " << lockstep_epoch << " s";
  }
  // Epochs end when the swarm together reaches the target batch (a lockstep
  // swarm at the slow pace would process ~2.3× the target per epoch).
  EXPECT_LT(total_samples / 6, 1.5 * target);
  // The slow peer's samples are counted: it took part in the averaged rounds
  // (weighted by its samples) and ended at the same epoch.
  EXPECT_EQ(s["epochs"].get<int>(), 6);
  EXPECT_GE(s["averaged_rounds"].get<int>(), 5) << s.dump();
  EXPECT_GE(slow_samples, 6 * 32 * 3);
  coordinator.stop();
  fs::remove_all(dir);
}

// Local-update mode (DiLoCo): three peers take 20 inner Adam steps each, then
// average their parameter deltas and apply an outer Nesterov step; the model
// reaches ≥ 80 % test accuracy on Fashion-MNIST (about 84 % at 40 outer steps).
TEST(SwarmProcesses, LocalUpdatesReach80PercentOnFashionMnist) {
  const auto dir = fresh_work_dir("diloco");
  std::ofstream(dir / "run.json") << R"({"run": "it-diloco", "target_batch_size": 4096,
    "batch_size": 64, "model": {"hidden": [64], "seed": 5},
    "optimizer": {"name": "adam", "lr": 0.002},
    "averaging": {"mode": "local_updates", "local_steps": 20, "outer_lr": 0.7,
                  "outer_momentum": 0.9, "matchmaking_time": 1.0, "averaging_timeout": 8.0}})";
  Coordinator coordinator(dir);
  const std::string address = coordinator.address();
  ASSERT_FALSE(address.empty()) << coordinator.process().stderr_text();
  std::vector<std::unique_ptr<Process>> peers;
  for (int i = 0; i < 3; ++i)
    peers.push_back(join(dir, "peer" + std::to_string(i), address, "it-diloco",
                         {"--max-epochs", "40", "--time-limit", "100"}));
  for (auto& p : peers) {
    auto code = p->wait_for(120s);
    ASSERT_TRUE(code.has_value()) << p->stderr_text();
    EXPECT_EQ(*code, 0) << p->stderr_text();
    EXPECT_NE(p->stderr_text().find("averaging local_updates"), std::string::npos);
  }
  for (int i = 0; i < 3; ++i) {
    const auto s = read_json(dir / ("peer" + std::to_string(i) + ".json"));
    ASSERT_TRUE(s.is_object()) << i;
    // 40 outer steps, or most of them if the time limit came first on a loaded machine.
    EXPECT_GE(s["epochs"].get<int>(), 30) << s.dump();
    // Most outer steps were averaged with the others, not taken alone (a
    // peer that falls behind loads the state and rejoins).
    EXPECT_GE(s["averaged_rounds"].get<int>(), 20) << s.dump();
    // On the full test set (10,000 images).
    EXPECT_GE(s["test_accuracy"].get<double>(), 0.80) << s.dump();
  }
  coordinator.stop();
  fs::remove_all(dir);
}
