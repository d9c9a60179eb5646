// Integration: two `apiary expert-server` processes join one DHT over TCP; a
// mixture of experts in this process finds their experts by beam search
// through the DHT, calls them, keeps working when one server is SIGKILLed, and
// the other one checkpoints on SIGTERM and exits 0.
#include "client_peer.hpp"
#include "core/identity.hpp"
#include "core/rpc.hpp"
#include "core/tcp_transport.hpp"
#include "dht/node.hpp"
#include "experts/dht_directory.hpp"
#include "experts/mixture.hpp"
#include "experts/remote_expert.hpp"
#include "kernels/device.hpp"
#include "optimizer/membership.hpp"
#include "tests/integration/process.hpp"
#include "tests/optimizer/process_util.hpp"

#include <gtest/gtest.h>
#include <asio/co_spawn.hpp>
#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <asio/use_future.hpp>

#include <ctime>
#include <filesystem>
#include <future>
#include <set>
#include <thread>

using namespace apiary;
using namespace apiary::experts;
using apiary::experts::testing::ClientPeer;
using namespace std::chrono_literals;

namespace {

std::unique_ptr<test::ChildProcess> start_server(const std::string& pattern,
                                                 const std::string& peers,
                                                 const std::string& checkpoint_dir) {
  std::vector<std::string> argv{
      APIARY_BIN, "expert-server",   "--experts", pattern,    "--hidden",
      "16",       "--update-period", "1",         "--listen", "127.0.0.1:0"};
  if (!peers.empty()) argv.insert(argv.end(), {"--peers", peers});
  if (!checkpoint_dir.empty()) argv.insert(argv.end(), {"--checkpoint-dir", checkpoint_dir});
  return std::make_unique<test::ChildProcess>(argv);
}

}  // namespace

TEST(ExpertServerCli, MixtureOverTwoServerProcessesSurvivesAKill) {
  auto checkpoints = std::filesystem::path(::testing::TempDir()) / "apiary-expert-cli-ckpt";
  std::filesystem::remove_all(checkpoints);
  auto first = start_server("ffn.[0:2].[0:4]", "", checkpoints.string());
  auto first_address = first->read_line(20s);
  ASSERT_TRUE(first_address) << "first server printed no address";
  auto second = start_server("ffn.[2:4].[0:4]", *first_address, "");
  auto second_address = second->read_line(20s);
  ASSERT_TRUE(second_address) << "second server printed no address";

  ClientPeer client(PeerAddress::parse(*first_address));
  DhtExpertDirectory directory(client.dht(), 5s);
  MoeConfig config;
  config.in_features = 16;
  config.out_features = 16;
  config.grid = {4, 4};
  config.k_best = 4;
  config.k_min = 1;
  config.forward_timeout = 10s;
  config.timeout_after_k_min = 2s;
  config.beam.negative_cache_ttl = 0ms;  // servers are still declaring
  auto x = HostTensor::zeros({6, 16});
  for (std::size_t i = 0; i < x.values.size(); ++i) x.values[i] = std::cos(float(i) * 0.37f);

  // Wait until both servers' experts are visible (declarations are asynchronous).
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  std::set<std::string> servers_seen;
  BeamSearcher searcher(directory, "ffn.", {4, 4}, config.beam);
  while (servers_seen.size() < 2 && std::chrono::steady_clock::now() < deadline) {
    servers_seen.clear();
    GridScores uniform{std::vector<float>(4, 0.0f), std::vector<float>(4, 0.0f)};
    for (auto& e : searcher.find_best_experts(uniform, 16)) {
      servers_seen.insert(e.expert.server.to_string());
    }
    if (servers_seen.size() < 2) std::this_thread::sleep_for(200ms);  // polling a DHT
  }
  ASSERT_EQ(servers_seen.size(), 2u);

  MixtureOfExperts moe(config, directory, remote_resolver(client.rpc()));
  auto result = moe.forward(x);
  for (auto n : result.answered) EXPECT_GE(n, 1u);
  auto dx = moe.backward(result, result.output);
  EXPECT_EQ(dx.shape, x.shape);

  second->signal(SIGKILL);
  ASSERT_TRUE(second->wait(10s));
  // Experts of the dead server fail fast (connection refused) and are masked.
  for (int step = 0; step < 3; ++step) {
    auto again = moe.forward(x);
    for (auto n : again.answered) EXPECT_GE(n, 1u);
    moe.backward(again, again.output);
  }

  first->signal(SIGTERM);
  auto code = first->wait(20s);
  ASSERT_TRUE(code);
  EXPECT_EQ(*code, 0);
  EXPECT_TRUE(std::filesystem::exists(checkpoints / "ffn.0.0.expert"));
  EXPECT_TRUE(std::filesystem::exists(checkpoints / "ffn.1.3.expert"));
  std::filesystem::remove_all(checkpoints);
}

// --device cuda computes the experts on the GPU; where there is none the server
// refuses to start and says why (the driver's reason), exit code 2.
TEST(ExpertServerCli, DeviceCudaRunsOnTheGpuOrSaysWhyNot) {
  const auto dir =
      std::filesystem::temp_directory_path() / ("apiary-expert-cuda-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  apiary::testing::Process server({APIARY_BIN, "expert-server", "--experts", "ffn.[0:2]",
                                   "--hidden", "16", "--device", "cuda", "--listen", "127.0.0.1:0"},
                                  dir / "out", dir / "err");
  if (kernels::cuda_available()) {
    ASSERT_TRUE(server.wait_for_text("apiary://", 20s)) << server.stderr_text();
    server.signal(SIGTERM);
    EXPECT_EQ(server.wait_for(20s).value_or(-1), 0) << server.stderr_text();
  } else {
    EXPECT_EQ(server.wait_for(20s).value_or(-1), 2) << server.stderr_text();
    EXPECT_NE(server.stderr_text().find("no usable CUDA device (" + kernels::cuda_status() + ")"),
              std::string::npos)
        << server.stderr_text();
  }
  std::filesystem::remove_all(dir);
}

// A server of a permissioned run (--identity + --token) serves members and
// refuses everyone else, like every peer of a token run.
TEST(ExpertServerCli, TokenRunServesMembersOnly) {
  const auto dir = apiary::testing::fresh_work_dir("expert-token");
  const auto run_key = Identity::generate();
  const auto server_identity = Identity::generate();
  const auto expires = static_cast<std::uint64_t>(std::time(nullptr)) + 3600;
  server_identity.save(dir / "server.key");
  optimizer::save_token(
      dir / "server.token",
      {optimizer::issue_token(run_key, "moe-run", server_identity.peer_id(), expires),
       run_key.public_key()});
  test::ChildProcess server({APIARY_BIN, "expert-server", "--experts", "ffn.[0:2]", "--hidden",
                             "16", "--identity", (dir / "server.key").string(), "--token",
                             (dir / "server.token").string(), "--listen", "127.0.0.1:0"});
  auto line = server.read_line(20s);
  ASSERT_TRUE(line);
  const auto address = PeerAddress::parse(*line);

  const auto member_identity = Identity::generate();
  TransportOptions member_options;
  member_options.own_token =
      optimizer::issue_token(run_key, "moe-run", member_identity.peer_id(), expires).encode();
  member_options.admit = optimizer::make_admit_check(run_key.public_key(), "moe-run");
  ClientPeer member(member_options, member_identity);
  member.bootstrap(address);
  RemoteExpert expert(member.rpc(), {"ffn.1", address});
  EXPECT_EQ(expert.forward(HostTensor::normal({3, 16}, 1), nullptr, 10s).get().rows(), 3u);

  ClientPeer outsider;  // no token
  EXPECT_THROW(outsider.bootstrap(address), Error);
  RemoteExpert refused(outsider.rpc(), {"ffn.1", address});
  EXPECT_THROW(refused.forward(HostTensor::normal({3, 16}, 2), nullptr, 10s).get(), Error);

  server.signal(SIGTERM);
  EXPECT_EQ(server.wait(20s).value_or(-1), 0);
  std::filesystem::remove_all(dir);
}
