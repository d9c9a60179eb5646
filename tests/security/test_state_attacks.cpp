// State and progress attacks on real `apiary coordinator`/`join` processes over
// loopback (issue 13, item 2). A stranger joins the run's DHT and
//   - announces itself as a state donor of a well-formed but wrong state (the
//     honest donors' shapes and metadata, every value 0.25) claiming epoch 1000;
//   - publishes a progress report claiming epoch 1000 and the whole target.
// The honest peers must keep their own epochs and state, a late joiner must
// load the state the honest donors vouch for (and no chunk of the stranger's),
// and the coordinator must checkpoint nothing of epoch 1000.
#include "averaging/group_key_store.hpp"
#include "averaging/state_sharing.hpp"
#include "averaging/state_wire.hpp"
#include "dht/runner.hpp"
#include "dht/validator.hpp"
#include "optimizer/progress_tracker.hpp"
#include "tests/optimizer/process_util.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>
#include <regex>
#include <string>
#include <thread>
#include <vector>

namespace apiary {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;
using testing::Process;

constexpr std::uint64_t kClaimedEpoch = 1000;

// The stranger: a DHT peer with its own identity serving a forged state.
class ForgingDonor {
 public:
  ForgingDonor(const PeerAddress& bootstrap, std::string run)
      : identity_(Identity::generate()), run_(std::move(run)) {
    dht::DhtOptions options;
    options.validator = std::make_shared<dht::OwnerSignatureValidator>(identity_);
    runner_ = std::make_unique<dht::DhtRunner>(
        dht::DhtRunner::tcp(identity_, TcpEndpoint{"127.0.0.1", 0}, /*client_mode=*/false),
        std::vector<PeerAddress>{bootstrap}, options);
  }

  // Copies an honest donor's shapes and metadata, forges epoch and values,
  // announces itself as a donor. False if no honest donor was listed yet.
  bool forge_and_announce() {
    return runner_
        ->run([this](dht::DhtNode& node) -> asio::awaitable<bool> {
          averaging::DhtGroupKeyStore store(node.shared_from_this());
          const double now = dht::system_dht_time();
          auto donors = co_await store.list(run_ + "/state", now);
          std::optional<averaging::StateMeta> honest;
          for (const auto& d : donors) {
            try {
              Bytes empty;
              honest = averaging::decode_state_meta(
                  co_await node.rpc().call(d.address, "averaging.state.meta", std::move(empty)));
              break;
            } catch (const std::exception&) {
            }
          }
          if (!honest) co_return false;
          averaging::StateSnapshot forged;
          forged.epoch = kClaimedEpoch;
          forged.metadata = honest->metadata;
          for (std::size_t size : honest->sizes) forged.tensors.emplace_back(size, 0.25f);
          donor_ = std::make_shared<averaging::StateDonor>(node.rpc());
          donor_->publish(std::move(forged));
          co_return co_await donor_->announce(store, run_, now + 120);
        })
        .get();
  }

  // A progress report claiming epoch 1000 and the whole target batch.
  bool lie_about_progress(std::uint64_t target) {
    return runner_
        ->run([this, target](dht::DhtNode& node) -> asio::awaitable<bool> {
          optimizer::ProgressTracker tracker(node.shared_from_this(), identity_.public_key(), run_,
                                             target);
          optimizer::PeerProgress lie;
          lie.epoch = kClaimedEpoch;
          lie.samples_accumulated = target;
          lie.samples_per_second = 1000;
          lie.report_time = dht::system_dht_time();
          co_return co_await tracker.publish(lie);
        })
        .get();
  }

  std::size_t chunks_served() {
    return runner_
        ->run([this](dht::DhtNode&) -> asio::awaitable<std::size_t> {
          co_return donor_ ? donor_->chunks_served() : 0;
        })
        .get();
  }

 private:
  Identity identity_;
  std::string run_;
  std::unique_ptr<dht::DhtRunner> runner_;
  std::shared_ptr<averaging::StateDonor> donor_;  // used on the runner's thread
};

// Epochs a peer's log says it trained ("epoch    N " lines) and the epoch it loaded.
std::uint64_t newest_logged_epoch(const std::string& log) {
  static const std::regex line(R"(epoch +([0-9]+) )");
  std::uint64_t newest = 0;
  for (auto it = std::sregex_iterator(log.begin(), log.end(), line); it != std::sregex_iterator();
       ++it)
    newest = std::max<std::uint64_t>(newest, std::stoull((*it)[1].str()));
  return newest;
}

std::optional<std::uint64_t> loaded_epoch(const std::string& log) {
  static const std::regex line(R"(loaded state of epoch ([0-9]+))");
  std::smatch m;
  if (!std::regex_search(log, m, line)) return std::nullopt;
  return std::stoull(m[1].str());
}

TEST(StateAttacks, AForgedDonorAndAProgressLiarMoveNobody) {
  const auto dir = testing::fresh_work_dir("state-forgery");
  std::ofstream(dir / "run.json") << R"({"run": "forgery", "target_batch_size": 512,
    "batch_size": 64, "model": {"hidden": [32], "seed": 3},
    "optimizer": {"name": "adam", "lr": 0.003},
    "averaging": {"matchmaking_time": 1.0, "averaging_timeout": 8.0}})";
  testing::Coordinator coordinator(
      dir, {"--checkpoint-dir", (dir / "ckpt").string(), "--checkpoint-every", "2"});
  const std::string address = coordinator.address();
  ASSERT_FALSE(address.empty()) << coordinator.process().stderr_text();
  auto join = [&](const std::string& name, const std::string& epochs) {
    return std::make_unique<Process>(
        std::vector<std::string>{APIARY_BIN, "join", "--peers", address, "--run", "forgery",
                                 "--max-epochs", epochs, "--time-limit", "100", "--summary",
                                 (dir / (name + ".json")).string()},
        dir / (name + ".out"), dir / (name + ".err"));
  };
  auto a = join("a", "24");
  auto b = join("b", "24");
  for (int i = 0; i < 600 && newest_logged_epoch(a->stderr_text()) < 3 && a->running(); ++i)
    std::this_thread::sleep_for(100ms);
  ASSERT_GE(newest_logged_epoch(a->stderr_text()), 3u) << a->stderr_text();

  ForgingDonor stranger(PeerAddress::parse(address), "forgery");
  bool announced = false;
  for (int i = 0; i < 50 && !announced; ++i) {
    announced = stranger.forge_and_announce();
    if (!announced) std::this_thread::sleep_for(200ms);
  }
  ASSERT_TRUE(announced) << "no honest donor to copy the state's shape from";
  ASSERT_TRUE(stranger.lie_about_progress(512));

  auto late = join("late", "24");
  for (auto* p : {a.get(), b.get(), late.get()}) {
    auto code = p->wait_for(150s);
    ASSERT_TRUE(code.has_value());
    EXPECT_EQ(*code, 0) << p->stderr_text();
  }
  nlohmann::json figures{{"attack", "forged donor at epoch 1000 + progress liar"}};
  for (const char* name : {"a", "b", "late"}) {
    const auto s = testing::read_json(dir / (std::string(name) + ".json"));
    ASSERT_TRUE(s.is_object()) << name;
    EXPECT_EQ(s["epochs"].get<int>(), 24) << name << ": its epochs were pulled forward";
    EXPECT_GT(s["test_accuracy"].get<double>(), 0.5) << name << " " << s.dump();
    figures[std::string(name) + "_test_accuracy"] = s["test_accuracy"];
  }
  const auto loaded = loaded_epoch(late->stderr_text());
  ASSERT_TRUE(loaded.has_value()) << late->stderr_text();
  EXPECT_LT(*loaded, kClaimedEpoch);
  EXPECT_EQ(stranger.chunks_served(), 0u) << "a download used the forged donor";
  figures["late_loaded_epoch"] = *loaded;
  figures["forged_chunks_served"] = stranger.chunks_served();
  coordinator.stop();
  const auto log = coordinator.process().stderr_text() + coordinator.process().stdout_text();
  EXPECT_EQ(log.find("checkpoint of epoch 1000"), std::string::npos) << log;
  EXPECT_NE(log.find(" written to "), std::string::npos) << "no checkpoint was written: " << log;
  std::printf("attack: %s\n", figures.dump().c_str());
}

}  // namespace
}  // namespace apiary
