// DHT attacks on real `apiary` processes over loopback (issue 13, item 1):
// squatting a run's keys with plain values and long lifetimes, and filling a
// node's storage from one identity and from many. Each test asserts that the
// signed records still win, that what an attacker stores stays within its
// quotas, and that the node keeps answering honest gets and pings; it prints
// what it measured (one "attack:" JSON line per test).
#include "dht/runner.hpp"
#include "dht/validator.hpp"
#include "tests/integration/process.hpp"
#include "tests/optimizer/process_util.hpp"
#include "tests/security/attacker.hpp"
#include "tests/security/honest_client.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

namespace apiary {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;
using test::bytes_of;
using test::ChildProcess;
using test::client_of;
using test::percentile;

struct Outcome {
  int code = -1;
  std::string out, err;
};

Outcome run_apiary(const fs::path& dir, std::vector<std::string> args, const std::string& name) {
  args.insert(args.begin(), APIARY_BIN);
  testing::Process p(std::move(args), dir / (name + ".out"), dir / (name + ".err"));
  Outcome o;
  o.code = p.wait_for(60s).value_or(-1);
  o.out = p.stdout_text();
  o.err = p.stderr_text();
  return o;
}

void report(const nlohmann::json& figures) {
  std::printf("attack: %s\n", figures.dump().c_str());
  std::fflush(stdout);
}

// A stranger puts plain values with week-long lifetimes under the keys a run
// uses while its coordinator is up: the signed configuration still wins and
// `apiary status` still reads it.
TEST(DhtAttacks, SquattingARunsKeysCannotBlockIt) {
  const auto dir = testing::fresh_work_dir("dht-squat");
  std::ofstream(dir / "run.json") << R"({"run": "squat", "target_batch_size": 256,
    "batch_size": 64, "model": {"hidden": [16], "seed": 3}})";
  testing::Coordinator coordinator(dir);
  const std::string& address = coordinator.address();
  ASSERT_FALSE(address.empty()) << coordinator.process().stderr_text();
  nlohmann::json figures{{"attack", "squat run keys"}};
  for (const std::string key : {"squat.config", "squat.progress"}) {
    const auto put = run_apiary(
        dir, {"dht", "put", key, "squatted", "--ttl", "604000", "--peers", address}, "put");
    figures[key] = put.code == 0 ? "stored" : "refused: " + put.err.substr(0, 120);
    // Whatever the store said, the signed dictionary is what a reader finds.
    const auto get = run_apiary(dir, {"dht", "get", key, "--peers", address, "--json"}, "get");
    if (key == "squat.config") {
      ASSERT_EQ(get.code, 0) << get.err;
      const auto found = nlohmann::json::parse(get.out, nullptr, false);
      EXPECT_EQ(found.value("type", ""), "dictionary") << get.out;
    }
  }
  const auto status =
      run_apiary(dir, {"status", "--peers", address, "--run", "squat", "--json"}, "status");
  ASSERT_EQ(status.code, 0) << status.err;
  const auto j = nlohmann::json::parse(status.out, nullptr, false);
  ASSERT_TRUE(j.is_object()) << status.out;
  EXPECT_EQ(j["config"]["target_batch_size"], 256) << status.out;
  figures["status_after"] = "config read";
  report(figures);
  coordinator.stop();
}

// A squat placed before the owner publishes: the owner's signed subkey
// replaces it, and the squatter's lifetime was capped on arrival.
TEST(DhtAttacks, AnOwnersSignedRecordReplacesAnEarlierSquat) {
  const auto dir = testing::fresh_work_dir("dht-presquat");
  ChildProcess node({APIARY_BIN, "dht", "--listen", "127.0.0.1:0"});
  const PeerAddress to = test::printed_address(node);
  const auto squat = run_apiary(
      dir, {"dht", "put", "early.config", "squatted", "--ttl", "80000", "--peers", to.to_string()},
      "squat");
  ASSERT_EQ(squat.code, 0) << squat.err;  // accepted, with its lifetime capped
  const auto squatted = nlohmann::json::parse(
      run_apiary(dir, {"dht", "get", "early.config", "--peers", to.to_string(), "--json"}, "g0")
          .out,
      nullptr, false);
  ASSERT_TRUE(squatted.is_object());
  const double now = dht::system_dht_time();
  EXPECT_LE(squatted.value("expiration", 0.0), now + 24 * 3600 + 60) << squatted.dump();

  const Identity owner = Identity::generate();
  owner.save(dir / "owner.key");
  const std::string marker = dht::OwnerSignatureValidator::owner_marker(owner.public_key());
  const auto put =
      run_apiary(dir,
                 {"dht", "put", "early.config", R"({"run":"early"})", "--subkey", marker, "--ttl",
                  "600", "--identity", (dir / "owner.key").string(), "--peers", to.to_string()},
                 "owner");
  ASSERT_EQ(put.code, 0) << put.err;
  const auto found = nlohmann::json::parse(
      run_apiary(dir, {"dht", "get", "early.config", "--peers", to.to_string(), "--json"}, "g1")
          .out,
      nullptr, false);
  ASSERT_EQ(found.value("type", ""), "dictionary") << found.dump();
  ASSERT_EQ(found["entries"].size(), 1u) << found.dump();
  EXPECT_EQ(found["entries"][0].value("subkey", ""), marker);
  report({{"attack", "squat before the owner"},
          {"squat_expiration_s", squatted.value("expiration", 0.0) - now},
          {"owner_record", "replaced the squat"}});
}

// One identity, then eight more, store 32 KiB values until refused: what they
// hold stays within the per-peer and per-network quotas, and honest gets and
// pings keep answering fast.
TEST(DhtAttacks, StorageFillIsBoundedPerSourceAndTheNodeKeepsServing) {
  ChildProcess node({APIARY_BIN, "dht", "--listen", "127.0.0.1:0", "--status-interval", "0.2"});
  const PeerAddress to = test::printed_address(node);
  const std::size_t baseline = test::resident_bytes(node.pid());
  auto honest = client_of(to, Identity::generate());
  const Bytes honest_value = bytes_of("the honest value");
  ASSERT_TRUE(
      honest->store(bytes_of("honest"), std::nullopt, honest_value, dht::system_dht_time() + 600)
          .get()
          .ok());

  const Bytes filler(32u << 10, 0x5a);
  std::vector<std::size_t> stored_per_identity;
  for (int identity = 0; identity < 9; ++identity) {
    auto attacker = client_of(to, Identity::generate());
    std::size_t stored = 0;
    bool refused = false;
    // 16 MiB per identity is 512 values; 1,024 tries bound the loop.
    for (int batch = 0; batch < 64 && !refused; ++batch) {
      std::vector<dht::Record> records;
      for (int i = 0; i < 16; ++i) {
        records.push_back({bytes_of("fill-" + std::to_string(identity) + "-" +
                                    std::to_string(batch) + "-" + std::to_string(i)),
                           std::nullopt, filler, dht::system_dht_time() + 3600});
      }
      const auto results =
          attacker->run([records](dht::DhtNode& n) mutable { return n.store_many(records); }).get();
      for (const auto& r : results) {
        if (r.ok())
          ++stored;
        else
          refused = true;
      }
    }
    EXPECT_TRUE(refused) << "identity " << identity << " was never refused";
    stored_per_identity.push_back(stored);
  }
  const std::size_t under_attack = test::resident_bytes(node.pid());

  const auto honest_latencies =
      test::honest_gets_and_pings(*honest, to, bytes_of("honest"), honest_value);
  const auto& get_ms = honest_latencies.get_ms;
  const auto& ping_ms = honest_latencies.ping_ms;
  const double mib = 1024.0 * 1024.0;
  const std::size_t value_bytes = filler.size() + 64 + 16;  // per-item accounting
  // Each identity holds at most its 16 MiB; the loopback network as a whole 64 MiB.
  std::size_t total = 0;
  for (std::size_t stored : stored_per_identity) {
    EXPECT_LE(stored * value_bytes, 16u << 20);
    total += stored;
  }
  EXPECT_LE(total * filler.size(), 64u << 20);
  EXPECT_GE(stored_per_identity.front() * value_bytes, 15u << 20) << "the quota is not the cap";
  EXPECT_LT(under_attack, 512u << 20);
  EXPECT_LT(percentile(get_ms, 0.99), 100.0);
  EXPECT_LT(percentile(ping_ms, 0.99), 100.0);
  nlohmann::json per_identity = stored_per_identity;
  report({{"attack", "storage fill, 9 identities on one network"},
          {"values_stored_per_identity", per_identity},
          {"stored_mib", static_cast<double>(total * filler.size()) / mib},
          {"rss_baseline_mib", static_cast<double>(baseline) / mib},
          {"rss_under_attack_mib", static_cast<double>(under_attack) / mib},
          {"honest_get_p99_ms", percentile(get_ms, 0.99)},
          {"honest_ping_p99_ms", percentile(ping_ms, 0.99)}});
  honest->shutdown();
}

}  // namespace
}  // namespace apiary
