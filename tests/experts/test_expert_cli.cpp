// Integration: two `apiary expert-server` processes join one DHT over TCP; a
// mixture of experts in this process finds their experts by beam search
// through the DHT, calls them, keeps working when one server is SIGKILLed, and
// the other one checkpoints on SIGTERM and exits 0. `apiary coordinator` of a
// moe-mlp run prints expert-server lines that, pasted, serve every expert.
#include "client_peer.hpp"
#include "core/identity.hpp"
#include "dht/node.hpp"
#include "experts/dht_directory.hpp"
#include "experts/expert_uid.hpp"
#include "experts/mixture.hpp"
#include "experts/remote_expert.hpp"
#include "kernels/device.hpp"
#include "net/rpc.hpp"
#include "net/tcp_transport.hpp"
#include "optimizer/membership.hpp"
#include "optimizer/run_config.hpp"
#include "tests/integration/process.hpp"
#include "tests/optimizer/process_util.hpp"

#include <gtest/gtest.h>
#include <asio/co_spawn.hpp>
#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <asio/use_future.hpp>
#include <nlohmann/json.hpp>

#include <ctime>
#include <filesystem>
#include <fstream>
#include <future>
#include <map>
#include <set>
#include <sstream>
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

// A printed shell line ("apiary expert-server --experts 'ffn.[0:2]' …") as the
// argv a shell would make of it, running this build's apiary.
std::vector<std::string> argv_of(const std::string& line) {
  std::vector<std::string> argv;
  std::istringstream in(line);
  for (std::string word; in >> word;) {
    if (word.size() >= 2 && word.front() == '\'' && word.back() == '\'')
      word = word.substr(1, word.size() - 2);
    argv.push_back(word);
  }
  if (!argv.empty() && argv[0] == "apiary") argv[0] = APIARY_BIN;
  return argv;
}

// The value of `flag` in `argv` (empty when absent).
std::string flag_value(const std::vector<std::string>& argv, const std::string& flag) {
  for (std::size_t i = 0; i + 1 < argv.size(); ++i)
    if (argv[i] == flag) return argv[i + 1];
  return {};
}

}  // namespace

// The coordinator of a moe-mlp run prints one expert-server line per
// --expert-servers (also in its --json object) naming the run's DHT address,
// the run's grid, widths and prefix; pasted as printed, those servers host
// every expert of the grid once and declare them in the run's DHT. A plain mlp
// run prints none.
TEST(ExpertServerCli, CoordinatorPrintsWorkingExpertServerLinesForAMoeRun) {
  const auto dir = apiary::testing::fresh_work_dir("coordinator-expert-lines");
  optimizer::RunConfig config;
  config.run = "it-expert-lines";
  config.model.type = "moe-mlp";
  config.model.hidden = {16};
  config.model.moe.expert_prefix = "lines";
  config.model.moe.grid = {3, 2};
  config.model.moe.expert_inner = 24;
  config.validate();
  std::ofstream(dir / "moe.json") << config.to_json();
  apiary::testing::Process coordinator(
      {APIARY_BIN, "coordinator", "--config", (dir / "moe.json").string(), "--expert-servers", "2",
       "--json", "--status-period", "1"},
      dir / "coordinator.out", dir / "coordinator.err");
  ASSERT_TRUE(coordinator.wait_for_text("\"expert_servers\"", 20s)) << coordinator.stderr_text();
  const auto out = coordinator.stdout_text();
  const auto address = apiary::testing::first_address(out);
  ASSERT_FALSE(address.empty()) << out;

  std::vector<std::string> lines;
  for (const auto& line : apiary::testing::lines_with(out, "apiary expert-server"))
    if (line.front() != '{') lines.push_back(line.substr(line.find("apiary expert-server")));
  ASSERT_EQ(lines.size(), 2u) << out;
  const auto object_lines = apiary::testing::lines_with(out, "\"expert_servers\"");
  ASSERT_EQ(object_lines.size(), 1u) << out;
  const auto object = nlohmann::json::parse(object_lines[0], nullptr, false);
  ASSERT_TRUE(object.is_object()) << object_lines[0];
  EXPECT_EQ(object["expert_servers"].get<std::vector<std::string>>(), lines);
  EXPECT_EQ(object["address"].get<std::string>(), address);
  EXPECT_NE(object["join"].get<std::string>().find("--peers " + address), std::string::npos);

  // Together the lines name every expert of the grid once, with the run's widths.
  const auto grid = experts::expand_pattern("lines.[0:3].[0:2]");
  std::map<std::string, std::size_t> server_of;  // uid -> index of the line hosting it
  std::vector<std::vector<std::string>> argvs;
  for (const auto& line : lines) {
    argvs.push_back(argv_of(line));
    const auto& argv = argvs.back();
    ASSERT_GE(argv.size(), 2u);
    EXPECT_EQ(argv[1], "expert-server") << line;
    EXPECT_EQ(flag_value(argv, "--peers"), address) << line;
    EXPECT_EQ(flag_value(argv, "--hidden"), "16") << line;
    EXPECT_EQ(flag_value(argv, "--inner"), "24") << line;
    for (const auto& uid : experts::expand_pattern(flag_value(argv, "--experts")))
      EXPECT_TRUE(server_of.emplace(uid, argvs.size() - 1).second) << uid << " named twice";
  }
  ASSERT_EQ(server_of.size(), grid.size());
  for (const auto& uid : grid) EXPECT_TRUE(server_of.count(uid)) << uid << " not served";

  // Started as printed, the servers declare those experts in the run's DHT.
  std::vector<std::unique_ptr<apiary::testing::Process>> servers;
  std::vector<std::string> server_addresses;
  for (std::size_t i = 0; i < argvs.size(); ++i) {
    const auto name = "server" + std::to_string(i);
    servers.push_back(std::make_unique<apiary::testing::Process>(argvs[i], dir / (name + ".out"),
                                                                 dir / (name + ".err")));
    ASSERT_TRUE(servers.back()->wait_for_text("apiary://", 20s)) << servers.back()->stderr_text();
    server_addresses.push_back(apiary::testing::first_address(servers.back()->stdout_text()));
  }
  ClientPeer client(PeerAddress::parse(address));
  DhtExpertDirectory directory(client.dht(), 5s);
  const std::vector<std::string> rows{"lines.0.", "lines.1.", "lines.2."};
  std::map<std::string, std::string> declared;  // uid -> server address
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  while (declared.size() < grid.size() && std::chrono::steady_clock::now() < deadline) {
    declared.clear();
    for (const auto& children : directory.get_children(rows))
      for (const auto& [coord, info] : children) declared[info.uid] = info.server.to_string();
    if (declared.size() < grid.size()) std::this_thread::sleep_for(200ms);  // polling a DHT
  }
  ASSERT_EQ(declared.size(), grid.size());
  for (const auto& [uid, server] : declared)
    EXPECT_EQ(server, server_addresses.at(server_of.at(uid))) << uid;

  for (auto& server : servers) {
    server->signal(SIGTERM);
    EXPECT_EQ(server->wait_for(20s).value_or(-1), 0) << server->stderr_text();
  }
  coordinator.signal(SIGTERM);
  EXPECT_EQ(coordinator.wait_for(20s).value_or(-1), 0) << coordinator.stderr_text();

  // A dense run needs no expert servers: asking for some is refused (exit 2), not ignored.
  config.model.type = "mlp";
  config.validate();
  std::ofstream(dir / "mlp.json") << config.to_json();
  apiary::testing::Process refused(
      {APIARY_BIN, "coordinator", "--config", (dir / "mlp.json").string(), "--expert-servers", "2"},
      dir / "refused.out", dir / "refused.err");
  EXPECT_EQ(refused.wait_for(20s).value_or(-1), 2) << refused.stderr_text();
  EXPECT_NE(refused.stderr_text().find("--expert-servers: this run has no expert grid"),
            std::string::npos)
      << refused.stderr_text();
  apiary::testing::Process dense(
      {APIARY_BIN, "coordinator", "--config", (dir / "mlp.json").string()}, dir / "dense.out",
      dir / "dense.err");
  ASSERT_TRUE(dense.wait_for_text("apiary join", 20s)) << dense.stderr_text();
  EXPECT_EQ(dense.stdout_text().find("expert-server"), std::string::npos) << dense.stdout_text();
  dense.signal(SIGTERM);
  EXPECT_EQ(dense.wait_for(20s).value_or(-1), 0) << dense.stderr_text();
  std::filesystem::remove_all(dir);
}

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
