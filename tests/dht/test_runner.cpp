// DhtRunner: blocking wrappers (own network thread, futures) over TCP loopback.
#include "dht/runner.hpp"
#include "tests/dht/test_bytes_util.hpp"

#include <gtest/gtest.h>

using namespace apiary;
using namespace apiary::dht;

TEST(DhtRunner, BlockingStoreAndGetAcrossThreeNodes) {
  const Identity a = Identity::generate(), c = Identity::generate(), d = Identity::generate();
  DhtRunner first(DhtRunner::tcp(a, TcpEndpoint{"127.0.0.1", 0}), {});
  DhtRunner second(DhtRunner::tcp(c, TcpEndpoint{"127.0.0.1", 0}), {first.address()});
  DhtOptions client_options;
  client_options.client_mode = true;
  DhtRunner client(DhtRunner::tcp(d, TcpEndpoint{}, /*client_mode=*/true), {second.address()},
                   client_options);

  const auto stored =
      client.store(to_bytes("k"), std::nullopt, to_bytes("from a thread"), system_dht_time() + 60)
          .get();
  EXPECT_TRUE(stored.ok()) << stored.reason();
  EXPECT_EQ(stored.replicas, 2u);  // both servers; the client holds nothing
  auto value = first.get(to_bytes("k")).get();
  ASSERT_TRUE(value.has_value());
  EXPECT_EQ(value->regular.value, to_bytes("from a thread"));
  EXPECT_EQ(first.stats().get().records, 1u);
  EXPECT_EQ(client.stats().get().records, 0u);
  // Arbitrary coroutines run on the node's thread.
  auto nearest =
      client.run([](DhtNode& node) { return node.find_nearest_nodes(node.id(), 5); }).get();
  EXPECT_EQ(nearest.size(), 2u);
}

TEST(DhtRunner, ConstructorThrowsWhenBootstrapFails) {
  DhtOptions options;
  options.bootstrap_attempts = 1;
  options.rpc_timeout = std::chrono::milliseconds(500);
  const auto nobody = PeerAddress::parse("apiary://" + std::string(40, '0') + "@127.0.0.1:1");
  try {
    DhtRunner runner(DhtRunner::tcp(Identity::generate(), TcpEndpoint{"127.0.0.1", 0}), {nobody},
                     options);
    FAIL() << "bootstrap against nobody succeeded";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::unavailable);
  }
}
