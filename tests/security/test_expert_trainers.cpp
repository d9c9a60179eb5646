// Training someone's experts (issue 13, item 5) against a real
// `apiary expert-server` on loopback: a server started with --trainers
// refuses backward calls from any other identity (permission_denied, the
// expert's parameters unchanged: the same forward output before and after,
// and its checkpoint counts only the permitted trainer's update), keeps
// serving forward to everyone, and trains on the permitted peer's backward.
#include "core/error.hpp"
#include "experts/checkpoint.hpp"
#include "experts/ffn_expert.hpp"
#include "experts/remote_expert.hpp"
#include "experts/wire.hpp"
#include "tests/experts/client_peer.hpp"
#include "tests/integration/process.hpp"
#include "tests/optimizer/process_util.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <csignal>
#include <cstdio>
#include <string>
#include <vector>

namespace apiary {
namespace {

using namespace std::chrono_literals;
using experts::HostTensor;
using experts::RemoteExpert;
using experts::testing::ClientPeer;

constexpr std::size_t kHidden = 16;

Errc backward_error(RemoteExpert& expert, const HostTensor& x, const HostTensor& g,
                    std::string* message) {
  try {
    expert.backward(x, g, nullptr, 10s).get();
  } catch (const Error& e) {
    *message = e.what();
    return e.code();
  }
  return Errc::ok;
}

TEST(ExpertTrainerAttack, BackwardFromAnotherIdentityIsRefusedAndTrainsNothing) {
  const auto dir = apiary::testing::fresh_work_dir("security-expert-trainers");
  const Identity trainer = Identity::generate();
  const Identity stranger = Identity::generate();
  test::ChildProcess server({APIARY_BIN, "expert-server", "--experts", "sec.[0:1]", "--hidden",
                             std::to_string(kHidden), "--optimizer", "sgd", "--lr", "0.1",
                             "--listen", "127.0.0.1:0", "--checkpoint-dir", (dir / "ckpt").string(),
                             "--trainers", trainer.peer_id().to_string()});
  const auto line = server.read_line(20s);
  ASSERT_TRUE(line) << "expert-server printed no address";
  const auto address = PeerAddress::parse(*line);

  ClientPeer stranger_peer({}, stranger);
  ClientPeer trainer_peer({}, trainer);
  RemoteExpert as_stranger(stranger_peer.rpc(), {"sec.0", address},
                           {experts::wire::TensorCodec::fp32});
  RemoteExpert as_trainer(trainer_peer.rpc(), {"sec.0", address},
                          {experts::wire::TensorCodec::fp32});
  const auto x = HostTensor::normal({4, kHidden}, 1);
  const auto g = HostTensor::normal({4, kHidden}, 2);
  const auto before = as_stranger.forward(x, nullptr, 10s).get();

  std::string message;
  for (int attempt = 0; attempt < 3; ++attempt) {
    EXPECT_EQ(backward_error(as_stranger, x, g, &message), Errc::permission_denied);
    EXPECT_NE(message.find("backward refused: peer " + stranger.peer_id().to_string()),
              std::string::npos)
        << message;
  }
  const auto after_refusal = as_stranger.forward(x, nullptr, 10s).get();
  EXPECT_EQ(after_refusal.values, before.values) << "a refused backward changed the expert";

  EXPECT_EQ(backward_error(as_trainer, x, g, &message), Errc::ok) << message;
  const auto after_training = as_trainer.forward(x, nullptr, 10s).get();
  EXPECT_NE(after_training.values, before.values) << "the permitted trainer's backward did nothing";

  // The checkpoint written at exit holds exactly the permitted update.
  server.signal(SIGTERM);
  EXPECT_EQ(server.wait(20s).value_or(-1), 0);
  experts::BackendOptions options;  // as the server's: --optimizer sgd --lr 0.1
  options.optimizer.kind = experts::ExpertOptimizerConfig::Kind::sgd;
  options.optimizer.sgd.lr = 0.1f;
  experts::ExpertBackend restored(
      "sec.0",
      std::make_unique<experts::FfnExpert>(experts::FfnConfig{kHidden, 4 * kHidden, kHidden, 0}),
      options);
  ASSERT_TRUE(experts::load_checkpoint(dir / "ckpt", restored));
  EXPECT_EQ(restored.update_count(), 1u);
  std::printf("attack: %s\n", nlohmann::json{{"attack", "expert backward from a stranger"},
                                             {"refused", 3},
                                             {"updates_after", restored.update_count()}}
                                  .dump()
                                  .c_str());
}

}  // namespace
}  // namespace apiary
