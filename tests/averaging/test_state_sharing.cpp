// State download from several donors: newest epoch only, hashes verified,
// a corrupt donor's chunks fetched again from others.
#include "averaging/state_sharing.hpp"
#include "core/codec.hpp"
#include "net/link_emulator.hpp"
#include "tests/averaging/butterfly_fixture.hpp"

#include <gtest/gtest.h>

#include <limits>

namespace apiary::averaging {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

StateSnapshot make_snapshot(std::uint64_t epoch) {
  StateSnapshot s;
  s.epoch = epoch;
  s.metadata = Bytes{1, 2, 3, static_cast<std::uint8_t>(epoch)};
  s.tensors = {std::vector<float>(10000), std::vector<float>(333)};
  for (std::size_t t = 0; t < s.tensors.size(); ++t)
    for (std::size_t k = 0; k < s.tensors[t].size(); ++k)
      s.tensors[t][k] = static_cast<float>(epoch * 1000 + t * 100 + k % 97);
  return s;
}

// Peer `joiner` downloads "run" checking sizes against make_snapshot's, with `bans`.
StateSnapshot download_checked(test::Swarm& swarm, std::size_t joiner, GroupKeyStore& store,
                               DonorBans& bans, DownloadStats& stats) {
  DownloadOptions options{"run", Clock::now() + 10s};
  options.expected_sizes = {10000, 333};
  options.bans = &bans;
  auto future =
      asio::co_spawn(swarm.ctx, download_state(*swarm.peers[joiner].node, store, options, &stats),
                     asio::use_future);
  return test::wait(swarm.ctx, future);
}

TEST(StateSharing, DownloadsTheNewestStateFromSeveralDonors) {
  test::Swarm swarm;
  swarm.add_peers(6, {1});  // 0..2 good donors, 3 stale, 4 corrupt, 5 joiner
  InMemoryGroupKeyStore store;
  std::vector<std::unique_ptr<StateDonor>> donors;
  for (std::size_t i = 0; i < 4; ++i) {
    donors.push_back(std::make_unique<StateDonor>(*swarm.peers[i].node, 512));
    donors.back()->publish(make_snapshot(i == 3 ? 4 : 5));
  }
  // The corrupt donor repeats a good donor's metadata but serves garbage.
  const PeerAddress good = swarm.peers[0].node->local_address();
  auto& corrupt = *swarm.peers[4].node;
  corrupt.add_method("averaging.state.meta",
                     [&corrupt, good](const rpc::RequestContext&, Bytes) -> asio::awaitable<Bytes> {
                       Bytes empty;
                       co_return co_await corrupt.call(good, "averaging.state.meta",
                                                       std::move(empty));
                     });
  corrupt.add_method("averaging.state.chunk",
                     [](const rpc::RequestContext&, Bytes) -> asio::awaitable<Bytes> {
                       co_return Bytes(512 * 4, 0xee);
                     });
  const double expiration =
      std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count() +
      60;
  auto announce_all = [&]() -> asio::awaitable<void> {
    for (auto& d : donors) co_await d->announce(store, "run", expiration);
    Declaration bad{corrupt.local_address(), expiration};
    co_await store.declare("run/state", std::move(bad));
  };
  auto announced = asio::co_spawn(swarm.ctx, announce_all(), asio::use_future);
  test::wait(swarm.ctx, announced);

  DownloadStats stats;
  DonorBans bans;
  const StateSnapshot got = download_checked(swarm, 5, store, bans, stats);
  const StateSnapshot want = make_snapshot(5);
  // The corrupt donor sent bytes that do not match the hashes it announced.
  EXPECT_EQ(bans, DonorBans{corrupt.peer_id()});
  EXPECT_EQ(stats.donors_banned, 1u);
  EXPECT_EQ(got.epoch, 5u);
  EXPECT_EQ(got.metadata, want.metadata);
  EXPECT_EQ(got.tensors, want.tensors);
  EXPECT_EQ(stats.donors_refused, 1u);  // the stale donor
  EXPECT_EQ(stats.donors_used, 4u);     // three good ones and the corrupt one
  EXPECT_GE(stats.retries, 1u);         // the corrupt donor's chunk came from another donor
  EXPECT_EQ(donors[3]->chunks_served(), 0u);
  std::size_t served = 0;
  for (std::size_t i = 0; i < 3; ++i) {
    EXPECT_GT(donors[i]->chunks_served(), 0u);  // all good donors shared the work
    served += donors[i]->chunks_served();
  }
  EXPECT_EQ(served, stats.chunks);
}

// A donor serving on demand keeps one snapshot while a download may still
// fetch its chunks, but peers that only poll its metadata (waiting for a newer
// state than it had) must not pin it on that snapshot forever.
TEST(StateSharing, PollingPeersDoNotPinAnOnDemandDonorOnAnOldSnapshot) {
  test::Swarm swarm;
  swarm.add_peers(2, {1});
  StateDonor donor(*swarm.peers[0].node, 512);
  std::uint64_t epoch = 0;
  donor.serve_on_demand([&epoch] { return std::optional<StateSnapshot>(make_snapshot(++epoch)); },
                        250ms);
  auto poll = [&]() -> asio::awaitable<std::vector<std::uint64_t>> {
    std::vector<std::uint64_t> seen;
    for (int i = 0; i < 12; ++i) {  // every 100 ms, well inside the 250 ms window
      Bytes empty;
      Bytes meta = co_await swarm.peers[1].node->call(swarm.peers[0].node->local_address(),
                                                      "averaging.state.meta", std::move(empty));
      const auto doc = codec::parse(meta);
      auto fields = doc.root().array("meta", 6, 6);
      fields.next();  // version
      seen.push_back(fields.next().uint("epoch"));
      co_await test::sleep_for(100ms);
    }
    co_return seen;
  };
  auto future = asio::co_spawn(swarm.ctx, poll(), asio::use_future);
  const auto seen = test::wait(swarm.ctx, future);
  ASSERT_EQ(seen.size(), 12u);
  EXPECT_GT(seen.back(), seen.front()) << "the donor never took a fresh snapshot";
  for (std::size_t i = 1; i < seen.size(); ++i) EXPECT_GE(seen[i], seen[i - 1]);
}

// Three donors, one killed in the middle of the download: its chunks come
// from the other two, and the result verifies.
TEST(StateSharing, DonorKilledMidwayTheDownloadStillCompletes) {
  test::Swarm swarm;
  // 2 MB/s links: 1.6 MB of state takes ~0.3 s from three donors.
  LinkProfile slow;
  slow.bandwidth_bytes_per_s = 2e6;
  swarm.add_peers(4, {1}, [&](TransportPtr inner) { return make_link_emulator(inner, slow); });
  StateSnapshot big;
  big.epoch = 9;
  big.metadata = Bytes{9, 9};
  big.tensors = {std::vector<float>(400000)};
  for (std::size_t k = 0; k < big.tensors[0].size(); ++k)
    big.tensors[0][k] = static_cast<float>(k % 1009) * 0.5f;
  InMemoryGroupKeyStore store;
  std::vector<std::unique_ptr<StateDonor>> donors;
  for (std::size_t i = 0; i < 3; ++i) {
    donors.push_back(std::make_unique<StateDonor>(*swarm.peers[i].node, 8192));
    donors.back()->publish(big);
  }
  for (auto& d : donors) {
    auto announced = asio::co_spawn(
        swarm.ctx, d->announce(store, "run", test::system_seconds_from_now(60)), asio::use_future);
    test::wait(swarm.ctx, announced);
  }
  DownloadStats stats;
  auto future = asio::co_spawn(
      swarm.ctx, download_state(*swarm.peers[3].node, store, {"run", Clock::now() + 20s}, &stats),
      asio::use_future);
  asio::co_spawn(swarm.ctx, test::kill_after(swarm.network, swarm.peers[1].node->peer_id(), 100ms),
                 asio::detached);
  const StateSnapshot got = test::wait(swarm.ctx, future);
  EXPECT_EQ(got.epoch, 9u);
  EXPECT_EQ(got.metadata, big.metadata);
  EXPECT_EQ(got.tensors, big.tensors);
  EXPECT_EQ(stats.donors_used, 3u);
  EXPECT_GE(stats.retries, 1u) << "the killed donor's chunk in flight was not retried";
  EXPECT_GT(donors[1]->chunks_served(), 0u) << "killed before it served anything";
  EXPECT_LT(donors[1]->chunks_served(), stats.chunks) << "killed after it served everything";
  EXPECT_GT(donors[0]->chunks_served() + donors[2]->chunks_served(), stats.chunks / 2);
}

// Every donor agrees on a state holding a NaN: nothing is returned, and they
// are banned, so the next download does not even ask them.
TEST(StateSharing, AStateWithANonFiniteValueIsRefusedAndItsDonorsBanned) {
  test::Swarm swarm;
  swarm.add_peers(3, {1});
  InMemoryGroupKeyStore store;
  StateSnapshot poisoned = make_snapshot(5);
  poisoned.tensors[1][7] = std::numeric_limits<float>::quiet_NaN();
  std::vector<std::unique_ptr<StateDonor>> donors;
  for (std::size_t i = 0; i < 2; ++i) {
    donors.push_back(std::make_unique<StateDonor>(*swarm.peers[i].node, 512));
    donors.back()->publish(poisoned);
    auto announced = asio::co_spawn(
        swarm.ctx, donors.back()->announce(store, "run", test::system_seconds_from_now(60)),
        asio::use_future);
    test::wait(swarm.ctx, announced);
  }
  DonorBans bans;
  auto download = [&] {
    DownloadOptions options{"run", Clock::now() + 10s};
    options.bans = &bans;
    return asio::co_spawn(swarm.ctx, download_state(*swarm.peers[2].node, store, options),
                          asio::use_future);
  };
  auto first = download();
  try {
    test::wait(swarm.ctx, first);
    ADD_FAILURE() << "a poisoned state was returned";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::bad_message);
    EXPECT_NE(std::string(e.what()).find("non-finite"), std::string::npos) << e.what();
  }
  EXPECT_EQ(bans, (DonorBans{swarm.peers[0].node->peer_id(), swarm.peers[1].node->peer_id()}));
  auto second = download();
  try {
    test::wait(swarm.ctx, second);
    ADD_FAILURE() << "banned donors were used";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::unavailable) << e.what();
  }
}

// A donor claiming a state of another shape than the run's model is refused
// before anything is allocated from its claim, and the honest donor serves.
TEST(StateSharing, ADonorWhoseSizesAreNotTheModelsIsRefused) {
  test::Swarm swarm;
  swarm.add_peers(3, {1});
  InMemoryGroupKeyStore store;
  StateSnapshot huge;
  huge.epoch = 99;
  huge.tensors = {std::vector<float>(200000, 1.0f)};
  StateDonor liar(*swarm.peers[0].node, 4096);
  liar.publish(huge);
  StateDonor honest(*swarm.peers[1].node, 512);
  honest.publish(make_snapshot(5));
  for (auto* d : {&liar, &honest}) {
    auto announced = asio::co_spawn(
        swarm.ctx, d->announce(store, "run", test::system_seconds_from_now(60)), asio::use_future);
    test::wait(swarm.ctx, announced);
  }
  DonorBans bans;
  DownloadStats stats;
  const StateSnapshot got = download_checked(swarm, 2, store, bans, stats);
  EXPECT_EQ(got.epoch, 5u);
  EXPECT_EQ(got.tensors, make_snapshot(5).tensors);
  EXPECT_EQ(liar.chunks_served(), 0u);
  EXPECT_EQ(bans, DonorBans{swarm.peers[0].node->peer_id()});
  EXPECT_EQ(stats.donors_refused, 1u);
}

TEST(StateSharing, NoDonorIsAnError) {
  test::Swarm swarm;
  swarm.add_peers(1, {1});
  InMemoryGroupKeyStore store;
  auto future = asio::co_spawn(
      swarm.ctx, download_state(*swarm.peers[0].node, store, {"run", Clock::now() + 1s}),
      asio::use_future);
  EXPECT_THROW(test::wait(swarm.ctx, future), Error);
}

}  // namespace
}  // namespace apiary::averaging
