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
                 (dir / (name + ".tok")).string(), "--max-epochs", "8", "--time-limit", "100"});
  };
  auto m1 = member("m1");
  auto m2 = member("m2");
  ASSERT_TRUE(m1->wait_for_text("epoch    2 ", 60s, /*in_stderr=*/true)) << m1->stderr_text();

  // Non-members knock while the members train.
  struct Intruder {
    std::string name;
    std::vector<std::string> flags;
    std::string expected;  // in the error message
  };
  const std::vector<Intruder> intruders{
      {"no_token", {}, "admits only members"},
      {"wrong_run", {"--token", (dir / "wrong_run.tok").string()}, "is not valid for run"},
      {"forged", {"--token", (dir / "forged.tok").string()}, "is not valid for run"},
      {"thief", {"--token", (dir / "m1.tok").string()}, "was issued for peer"},
  };
  std::vector<std::unique_ptr<Process>> refused;
  for (const auto& i : intruders) {
    auto flags = i.flags;
    flags.insert(flags.end(),
                 {"--identity", (dir / (i.name + ".key")).string(), "--max-epochs", "8"});
    refused.push_back(join(dir, i.name, address, "it-token", flags));
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
  for (auto* p : {m1.get(), m2.get()}) {
    auto code = p->wait_for(100s);
    ASSERT_TRUE(code.has_value()) << p->stderr_text();
    EXPECT_EQ(*code, 0) << p->stderr_text();
  }
  for (const char* name : {"m1", "m2"}) {
    auto s = read_json(dir / (std::string(name) + ".json"));
    ASSERT_TRUE(s.is_object()) << name;
    EXPECT_EQ(s["epochs"].get<int>(), 8) << name;
    EXPECT_GE(s["averaged_rounds"].get<int>(), 5) << name << ": members did not average together";
  }
  coordinator.stop();
  fs::remove_all(dir);
}
