// ProgressTracker over a small in-process DHT swarm (real RPC and validators).
#include "core/codec.hpp"
#include "optimizer/progress_tracker.hpp"

#include "dht/swarm.hpp"
#include "dht/validator.hpp"
#include "net/inproc_transport.hpp"

#include <gtest/gtest.h>
#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>

using namespace apiary;
using namespace apiary::optimizer;

namespace {

void run_body(asio::io_context& io, std::function<asio::awaitable<void>()> body) {
  bool finished = false;
  std::exception_ptr error;
  asio::co_spawn(io, body(), [&](std::exception_ptr e) {
    error = e;
    finished = true;
    io.stop();
  });
  io.run_for(std::chrono::seconds(60));
  io.restart();
  ASSERT_TRUE(finished) << "test body did not finish in 60 s";
  if (error) std::rethrow_exception(error);
}

}  // namespace

TEST(ProgressTracker, PeersSeeEachOthersSignedReports) {
  asio::io_context io;
  auto network = InprocNetwork::create(io.get_executor());
  dht::LocalSwarm swarm(io.get_executor(), dht::LocalSwarm::inproc(network), {}, 7);
  run_body(io, [&]() -> asio::awaitable<void> {
    co_await swarm.grow(6);
    const double now = dht::system_dht_time();
    std::vector<std::unique_ptr<ProgressTracker>> trackers;
    for (std::size_t i = 0; i < 3; ++i) {
      trackers.push_back(std::make_unique<ProgressTracker>(
          swarm.node(i), swarm.identity(i).public_key(), "run1", 1000));
      PeerProgress p;
      p.epoch = 2;
      p.samples_accumulated = 100 * (i + 1);
      p.samples_per_second = 10;
      p.report_time = now;
      const bool stored = co_await trackers.back()->publish(p);
      EXPECT_TRUE(stored);
    }
    // A peer in another run does not count.
    ProgressTracker other(swarm.node(3), swarm.identity(3).public_key(), "run2", 1000);
    // (Named, not a temporary: GCC 12 mishandles temporaries with destructors in co_await.)
    PeerProgress other_progress{"", 9, 5, 1, now, false};
    const bool other_stored = co_await other.publish(other_progress);
    EXPECT_TRUE(other_stored);

    ProgressTracker reader(swarm.node(5), swarm.identity(5).public_key(), "run1", 1000);
    auto g = co_await reader.refresh(0);
    EXPECT_EQ(reader.last_reports().size(), 3u);
    EXPECT_EQ(g.global_epoch, 2u);
    EXPECT_EQ(g.samples_accumulated, 600u);
    EXPECT_NEAR(g.total_samples_per_second, 30.0, 1e-9);
    bool found_peer0 = false;
    for (const auto& r : reader.last_reports())
      found_peer0 |= r.peer == swarm.identity(0).peer_id().to_string();
    EXPECT_TRUE(found_peer0);
  });
  swarm.stop();
  io.poll();
}

TEST(ProgressTracker, ForgedSubkeyIsRejected) {
  asio::io_context io;
  auto network = InprocNetwork::create(io.get_executor());
  dht::LocalSwarm swarm(io.get_executor(), dht::LocalSwarm::inproc(network), {}, 11);
  run_body(io, [&]() -> asio::awaitable<void> {
    co_await swarm.grow(4);
    // Node 1 tries to write a report under node 0's owner subkey: it cannot sign for it.
    ProgressTracker forger(swarm.node(1), swarm.identity(0).public_key(), "run1", 1000);
    PeerProgress forged{"", 99, 1000000, 1, dht::system_dht_time(), false};
    const bool stored = co_await forger.publish(forged);
    EXPECT_FALSE(stored);
    ProgressTracker reader(swarm.node(2), swarm.identity(2).public_key(), "run1", 1000);
    auto g = co_await reader.refresh(0);
    EXPECT_TRUE(reader.last_reports().empty());
    EXPECT_EQ(g.global_epoch, 0u);
  });
  swarm.stop();
  io.poll();
}

TEST(ProgressTracker, CodecRejectsMalformedValues) {
  PeerProgress p{"", 3, 42, 7.5, 1.7e9, true, 0.25, 0.875};
  auto decoded = ProgressTracker::decode(ProgressTracker::encode(p));
  ASSERT_TRUE(decoded.has_value());
  EXPECT_EQ(decoded->epoch, 3u);
  EXPECT_EQ(decoded->samples_accumulated, 42u);
  EXPECT_TRUE(decoded->client_mode);
  EXPECT_EQ(decoded->loss, 0.25);
  EXPECT_EQ(decoded->test_accuracy, 0.875);
  EXPECT_FALSE(ProgressTracker::decode(Bytes{0x93, 0x01, 0x02, 0x03}).has_value());
  EXPECT_FALSE(ProgressTracker::decode(Bytes{}).has_value());
  EXPECT_FALSE(ProgressTracker::owner_of(as_bytes("[owner:zz]")).has_value());
}

// Reports carry the process's round and byte counters for dashboards; an older
// peer's 7-field report still decodes (the counters then read as unknown).
TEST(ProgressTracker, CountersTravelAndOlderReportsStillDecode) {
  PeerProgress p{"", 3, 42, 7.5, 1.7e9, false, 0.25, 0.875};
  p.rounds_averaged = 11;
  p.rounds_failed = 2;
  p.bytes_sent = 5ull << 30;
  p.bytes_received = 77;
  p.round_seconds = 0.3;
  auto decoded = ProgressTracker::decode(ProgressTracker::encode(p));
  ASSERT_TRUE(decoded.has_value());
  EXPECT_EQ(decoded->rounds_averaged, 11u);
  EXPECT_EQ(decoded->rounds_failed, 2u);
  EXPECT_EQ(decoded->bytes_sent, 5ull << 30);
  EXPECT_EQ(decoded->bytes_received, 77u);
  EXPECT_EQ(decoded->round_seconds, 0.3);
  codec::Writer old;
  old.array(7).uint(3).uint(42).f64(7.5).f64(1.7e9).boolean(false).f64(0.25).f64(0.875);
  auto older = ProgressTracker::decode(old.take());
  ASSERT_TRUE(older.has_value());
  EXPECT_EQ(older->epoch, 3u);
  EXPECT_EQ(older->rounds_averaged, 0u);
  EXPECT_EQ(older->round_seconds, -1);
}
