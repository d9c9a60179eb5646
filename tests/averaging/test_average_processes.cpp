// Real `apiary average` processes on loopback: DHT matchmaking, butterfly
// all-reduce over the encrypted TCP transport, each peer its own process.
#include "tests/optimizer/process_util.hpp"

#include <nlohmann/json.hpp>

#include <gtest/gtest.h>

#include <map>
#include <set>
#include <sstream>

using apiary::testing::first_address;
using apiary::testing::Process;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

// The JSON round reports a process printed (lines starting with '{').
std::vector<nlohmann::json> reports(const std::string& text) {
  std::vector<nlohmann::json> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);)
    if (!line.empty() && line[0] == '{') out.push_back(nlohmann::json::parse(line));
  return out;
}

struct Swarm {
  fs::path dir;
  std::vector<std::unique_ptr<Process>> peers;
  std::string bootstrap;

  // Starts `count` peers; peer i has seed 11 + i and weight 1 + i.
  Swarm(const std::string& name, std::size_t count, const std::vector<std::string>& extra)
      : dir(fs::temp_directory_path() / ("apiary-avg-" + name + "-" + std::to_string(::getpid()))) {
    fs::create_directories(dir);
    for (std::size_t i = 0; i < count; ++i) {
      std::vector<std::string> args{APIARY_BIN,
                                    "average",
                                    "--json",
                                    "--group",
                                    name,
                                    "--group-size",
                                    std::to_string(count),
                                    "--seed",
                                    std::to_string(11 + i),
                                    "--weight",
                                    std::to_string(1 + i)};
      args.insert(args.end(), extra.begin(), extra.end());
      if (i > 0) {
        args.push_back("--peers");
        args.push_back(bootstrap);
      }
      const auto stem = dir / ("peer" + std::to_string(i));
      peers.push_back(
          std::make_unique<Process>(args, stem.string() + ".out", stem.string() + ".err"));
      if (i == 0) {
        EXPECT_TRUE(peers[0]->wait_for_text("apiary://", 15s)) << peers[0]->stderr_text();
        bootstrap = first_address(peers[0]->stdout_text());
      }
    }
  }
  ~Swarm() {
    peers.clear();
    fs::remove_all(dir);
  }
};

// Waits for every peer but `victim` and returns their one round report each.
std::vector<nlohmann::json> survivor_reports(Swarm& swarm, std::size_t victim) {
  std::vector<nlohmann::json> survivors;
  for (std::size_t i = 0; i < swarm.peers.size(); ++i) {
    if (i == victim) continue;
    const auto code = swarm.peers[i]->wait_for(60s);
    EXPECT_TRUE(code.has_value()) << "survivor " << i << " hangs";
    if (!code) continue;
    EXPECT_EQ(*code, 0) << swarm.peers[i]->stderr_text();
    const auto rounds = reports(swarm.peers[i]->stdout_text());
    EXPECT_EQ(rounds.size(), 1u) << swarm.peers[i]->stdout_text();
    if (rounds.size() == 1) survivors.push_back(rounds[0]);
  }
  return survivors;
}

// Survivors agree on the group, finished in time without NaN, and hold
// identical values for every part whose reducer is one of them.
void expect_live_parts_agree(const std::vector<nlohmann::json>& survivors) {
  const auto& members = survivors.at(0)["members"];
  for (const auto& r : survivors) {
    EXPECT_EQ(r["members"], members) << "survivors disagree on the group";
    EXPECT_EQ(r["non_finite"].get<int>(), 0);
    EXPECT_FALSE(r["deadline_hit"].get<bool>()) << r.dump();
  }
  std::size_t compared = 0;
  for (std::size_t part = 0; part < members.size(); ++part) {
    bool reducer_alive = false;
    for (const auto& r : survivors) reducer_alive = reducer_alive || r["peer"] == members[part];
    if (!reducer_alive) continue;
    for (const auto& r : survivors)
      EXPECT_EQ(r["part_hashes"][part], survivors[0]["part_hashes"][part]) << "part " << part;
    ++compared;
  }
  EXPECT_EQ(compared, survivors.size());
}

}  // namespace

// Four processes with different weights average to the exact weighted mean:
// fp32 within 1e-6 relative, fp16 and 8-bit within their codec bound; all four
// hold bit-identical results.
TEST(AverageProcesses, FourPeersReachTheExactWeightedMean) {
  for (const std::string codec : {"none", "fp16", "8bit"}) {
    Swarm swarm("exact-" + codec, 4,
                {"--compression", codec, "--size", "300000", "--matchmaking-time", "4"});
    ASSERT_FALSE(swarm.bootstrap.empty());
    std::set<std::string> hashes;
    for (auto& p : swarm.peers) {
      const auto code = p->wait_for(60s);
      ASSERT_TRUE(code.has_value()) << codec << ": a peer did not finish";
      EXPECT_EQ(*code, 0) << codec << ": " << p->stdout_text() << p->stderr_text();
      const auto rounds = reports(p->stdout_text());
      ASSERT_EQ(rounds.size(), 1u) << p->stdout_text();
      const auto& r = rounds[0];
      EXPECT_EQ(r["group_size"].get<int>(), 4) << r.dump();
      EXPECT_TRUE(r["failed_peers"].empty()) << r.dump();
      EXPECT_EQ(r["non_finite"].get<int>(), 0);
      ASSERT_FALSE(r["max_abs_error"].is_null()) << r.dump();
      EXPECT_TRUE(r["within_bound"].get<bool>()) << r.dump();
      if (codec == "none") {
        EXPECT_LE(r["max_rel_error"].get<double>(), 1e-6) << r.dump();
      } else {
        EXPECT_GT(r["max_abs_error"].get<double>(), 0.0) << "a lossy codec is exact?";
      }
      hashes.insert(r["hash"].get<std::string>());
    }
    EXPECT_EQ(hashes.size(), 1u) << codec << ": results differ between peers";
  }
}

// A peer SIGKILLed in the middle of the all-reduce: the survivors finish
// before their deadline with no NaN, and hold bit-identical values for every
// part whose reducer stayed alive.
TEST(AverageProcesses, SurvivorsOfAPeerKilledMidRoundAgree) {
  // 8 MiB per peer over links emulated at 40 Mbit/s per connection: the
  // all-reduce takes about a second, so the kill lands inside it.
  Swarm swarm(
      "kill", 4,
      {"--size", "2000000", "--link-mbps", "40", "--matchmaking-time", "4", "--timeout", "20"});
  ASSERT_FALSE(swarm.bootstrap.empty());
  auto& victim = *swarm.peers[3];
  ASSERT_TRUE(victim.wait_for_text("group of 4 formed", 30s, /*in_stderr=*/true))
      << victim.stderr_text();
  std::this_thread::sleep_for(300ms);
  ASSERT_TRUE(victim.running()) << "the round ended before the kill: " << victim.stdout_text();
  victim.signal(SIGKILL);

  const auto survivors = survivor_reports(swarm, 3);
  ASSERT_EQ(survivors.size(), 3u);
  ASSERT_EQ(survivors[0]["members"].size(), 4u);
  std::size_t failures_seen = 0;
  for (const auto& r : survivors) failures_seen += r["failed_peers"].size();
  EXPECT_GT(failures_seen, 0u) << "nobody noticed the killed peer";
  expect_live_parts_agree(survivors);
}

// A peer SIGKILLed while the group forms: the others still average (without
// it, or excluding it if it had joined) and agree.
TEST(AverageProcesses, PeerKilledDuringMatchmaking) {
  Swarm swarm("mm-kill", 4, {"--size", "200000", "--matchmaking-time", "3", "--timeout", "10"});
  ASSERT_FALSE(swarm.bootstrap.empty());
  swarm.peers[3]->signal(SIGKILL);  // it has just started: bootstrapping or declaring
  const auto survivors = survivor_reports(swarm, 3);
  ASSERT_EQ(survivors.size(), 3u);
  for (const auto& r : survivors) {
    ASSERT_GE(r["group_size"].get<int>(), 3) << r.dump();
    if (r["group_size"].get<int>() == 3) {
      EXPECT_TRUE(r["within_bound"].get<bool>()) << "the group without it is exact: " << r.dump();
    }
  }
  expect_live_parts_agree(survivors);
}
