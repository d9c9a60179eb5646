// Revoking a member of a token run (issue 13, item 6) with real processes on
// loopback: a coordinator (--auth token) and an expert server of the run,
// both refreshing the run's revocation list every second, and two members in
// this process. `apiary coordinator revoke` signs the list with the run key
// and stores it in the run's DHT; within seconds both processes close the
// revoked member's connections and refuse its new handshakes, while the
// other member keeps its connections and keeps being served.
#include "core/error.hpp"
#include "experts/remote_expert.hpp"
#include "optimizer/membership.hpp"
#include "optimizer/run_config.hpp"
#include "tests/experts/client_peer.hpp"
#include "tests/integration/process.hpp"
#include "tests/optimizer/process_util.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

namespace apiary {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;
using experts::HostTensor;
using experts::RemoteExpert;
using experts::testing::ClientPeer;

constexpr const char* kRun = "sec-revoke";

// A member's transport options: its token and the run's admit check.
TransportOptions member_options(const Identity& run_key, const Identity& member) {
  TransportOptions options;
  options.client_mode = true;  // dials only: its connections are the ones it opened
  options.own_token =
      optimizer::issue_token(run_key, kRun, member.peer_id(), optimizer::unix_seconds() + 3600)
          .encode();
  options.admit = optimizer::make_admit_check(run_key.public_key(), kRun);
  return options;
}

// How `call` ends: ok, or the code it threw.
template <typename F>
Errc outcome(F&& call) {
  try {
    call();
  } catch (const Error& e) {
    return e.code();
  }
  return Errc::ok;
}

TEST(RevocationAttack, RevokedMemberIsDisconnectedAndRefusedOthersKeepWorking) {
  const auto dir = apiary::testing::fresh_work_dir("security-revocation");
  const Identity run_key = Identity::generate();
  run_key.save(dir / "run.key");
  const Identity server_key = Identity::generate();
  server_key.save(dir / "server.key");
  optimizer::save_token(dir / "server.tok",
                        {optimizer::issue_token(run_key, kRun, server_key.peer_id(),
                                                optimizer::unix_seconds() + 3600),
                         run_key.public_key()});
  optimizer::RunConfig config;
  config.run = kRun;
  config.validate();
  std::ofstream(dir / "run.json") << config.to_json();

  apiary::testing::Coordinator coordinator(
      dir, {"--auth", "token", "--identity", (dir / "run.key").string(), "--dashboard", "off",
            "--revocation-refresh", "1"});
  const std::string address = coordinator.address();
  ASSERT_FALSE(address.empty()) << coordinator.process().stderr_text();
  test::ChildProcess server({APIARY_BIN, "expert-server", "--experts", "sec.[0:1]", "--hidden", "8",
                             "--peers", address, "--identity", (dir / "server.key").string(),
                             "--token", (dir / "server.tok").string(), "--revocation-refresh", "1",
                             "--listen", "127.0.0.1:0"});
  const auto server_line = server.read_line(20s);
  ASSERT_TRUE(server_line) << "expert-server printed no address";
  const auto server_address = PeerAddress::parse(*server_line);

  const Identity revoked = Identity::generate();
  const Identity kept = Identity::generate();
  ClientPeer revoked_peer(member_options(run_key, revoked), revoked);
  ClientPeer kept_peer(member_options(run_key, kept), kept);
  revoked_peer.bootstrap(PeerAddress::parse(address));
  kept_peer.bootstrap(PeerAddress::parse(address));
  RemoteExpert revoked_expert(revoked_peer.rpc(), {"sec.0", server_address});
  RemoteExpert kept_expert(kept_peer.rpc(), {"sec.0", server_address});
  const auto x = HostTensor::normal({2, 8}, 1);
  ASSERT_EQ(revoked_expert.forward(x, nullptr, 10s).get().rows(), 2u);
  ASSERT_EQ(kept_expert.forward(x, nullptr, 10s).get().rows(), 2u);
  ASSERT_GE(revoked_peer.connection_count(), 2u) << "to the coordinator and the expert server";
  const auto kept_connections = kept_peer.connection_count();

  const auto started = std::chrono::steady_clock::now();
  const auto revoke_out = apiary::testing::run_to_end(
      {APIARY_BIN, "coordinator", "revoke", "--run", kRun, "--identity", (dir / "run.key").string(),
       "--peer", revoked.peer_id().to_string(), "--peers", address},
      dir, "revoke");
  EXPECT_NE(revoke_out.find("revoked 1 peer(s) in run sec-revoke"), std::string::npos)
      << revoke_out;

  // Both processes close the revoked member's connections.
  while (revoked_peer.connection_count() > 0 && std::chrono::steady_clock::now() - started < 20s)
    std::this_thread::sleep_for(100ms);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  EXPECT_EQ(revoked_peer.connection_count(), 0u) << "open connections left after " << seconds;
  // Its new handshakes are refused, by the coordinator and by the expert server.
  EXPECT_EQ(
      outcome([&] { revoked_peer.run(revoked_peer.rpc().connect(PeerAddress::parse(address))); }),
      Errc::permission_denied);
  EXPECT_EQ(outcome([&] { revoked_peer.run(revoked_peer.rpc().connect(server_address)); }),
            Errc::permission_denied);
  EXPECT_NE(outcome([&] { revoked_expert.forward(x, nullptr, 5s).get(); }), Errc::ok);

  // The other member keeps its connections and is served.
  EXPECT_EQ(kept_expert.forward(x, nullptr, 10s).get().rows(), 2u);
  EXPECT_GE(kept_peer.connection_count(), kept_connections);
  EXPECT_EQ(outcome([&] { kept_peer.run(kept_peer.rpc().connect(PeerAddress::parse(address))); }),
            Errc::ok);
  std::printf("attack: %s\n", nlohmann::json{{"attack", "revoked member of a token run"},
                                             {"disconnected_after_s", seconds},
                                             {"redial", "refused"}}
                                  .dump()
                                  .c_str());
  server.signal(SIGTERM);
  EXPECT_EQ(server.wait(20s).value_or(-1), 0);
  coordinator.stop();
}

}  // namespace
}  // namespace apiary
