// DhtGroupKeyStore over an in-process DHT swarm (real RPC, OwnerSignatureValidator):
// declarations are owner-signed subkeys; a forged declaration (another peer's
// address under the forger's own subkey, or a write to another peer's subkey)
// is refused or ignored and cannot change who leads a round; matchmaking and
// state download still work over it.
#include "averaging/group_key_store.hpp"
#include "averaging/matchmaker.hpp"
#include "averaging/state_sharing.hpp"
#include "dht/swarm.hpp"
#include "tests/averaging/butterfly_fixture.hpp"

#include <gtest/gtest.h>

#include <algorithm>

namespace apiary::averaging {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

Bytes to_bytes(std::string_view text) {
  const auto span = as_bytes(text);
  return Bytes(span.begin(), span.end());
}

// A forger's node that skips every local check and signs nothing, so its
// stores reach the replicas as they are.
class AcceptEverything final : public dht::RecordValidator {
 public:
  bool validate(const dht::Record&) const override { return true; }
};

struct DhtFixture {
  test::Swarm swarm;  // the io_context and in-process network
  dht::LocalSwarm dht{swarm.ctx.get_executor(), dht::LocalSwarm::inproc(swarm.network)};

  explicit DhtFixture(std::size_t nodes) {
    auto grown = asio::co_spawn(swarm.ctx, dht.grow(nodes), asio::use_future);
    test::wait(swarm.ctx, grown);
  }
  ~DhtFixture() { dht.stop(); }

  template <typename T>
  T run(asio::awaitable<T> task) {
    auto future = asio::co_spawn(swarm.ctx, std::move(task), asio::use_future);
    return test::wait(swarm.ctx, future);
  }
  DhtGroupKeyStore store(std::size_t i) { return DhtGroupKeyStore(dht.node(i)); }
  PeerAddress address(std::size_t i) { return dht.node(i)->address(); }
  Bytes owner_subkey(std::size_t i) {
    return to_bytes(dht::OwnerSignatureValidator::owner_marker(dht.identity(i).public_key()));
  }
  std::vector<Declaration> list(std::size_t i, const std::string& key) {
    auto s = store(i);
    return run(s.list(key, dht::system_dht_time()));
  }
};

// The one matchmaking picks to lead: earliest expiration, ties by peer id.
Declaration leader_of(const std::vector<Declaration>& declarations) {
  return *std::min_element(
      declarations.begin(), declarations.end(), [](const auto& a, const auto& b) {
        return std::tie(a.expiration, a.address.peer) < std::tie(b.expiration, b.address.peer);
      });
}

TEST(GroupKeyStore, HonestDeclarationsAreStoredUnderSignedSubkeysAndListed) {
  DhtFixture f(10);
  const double now = dht::system_dht_time();
  const std::vector<std::size_t> declaring{1, 4, 7};
  for (std::size_t i : declaring) {
    auto s = f.store(i);
    EXPECT_TRUE(f.run(s.declare("run/0", Declaration{f.address(i), now + 20.0 + double(i)})));
  }
  for (std::size_t reader : {0u, 5u, 9u}) {
    auto found = f.list(reader, "run/0");
    ASSERT_EQ(found.size(), declaring.size()) << "reader " << reader;
    for (std::size_t i : declaring) {
      auto it = std::find_if(found.begin(), found.end(),
                             [&](const Declaration& d) { return d.address == f.address(i); });
      ASSERT_NE(it, found.end());
      EXPECT_NEAR(it->expiration, now + 20.0 + double(i), 1e-6);
    }
  }
  // The raw DHT entry: one owner subkey per declaring peer, nothing else.
  auto raw = f.run(f.dht.node(2)->get(to_bytes("averaging:run/0"), true));
  ASSERT_TRUE(raw.has_value());
  ASSERT_TRUE(raw->is_dictionary);
  EXPECT_EQ(raw->subkeys.size(), declaring.size());
  for (std::size_t i : declaring) EXPECT_TRUE(raw->subkeys.contains(f.owner_subkey(i)));
  // A key nobody declared under lists nothing.
  EXPECT_TRUE(f.list(3, "run/1").empty());
}

TEST(GroupKeyStore, ForgedDeclarationsAreRefusedOrIgnoredAndDoNotChangeTheLeader) {
  DhtFixture f(10);
  const std::string group = "run/3";
  const Bytes key = to_bytes("averaging:" + group);
  const double now = dht::system_dht_time();
  const std::size_t leader = 1, other = 3, forger = 5;
  {
    auto s1 = f.store(leader);
    auto s3 = f.store(other);
    ASSERT_TRUE(f.run(s1.declare(group, Declaration{f.address(leader), now + 30})));
    ASSERT_TRUE(f.run(s3.declare(group, Declaration{f.address(other), now + 40})));
  }
  ASSERT_EQ(leader_of(f.list(0, group)).address.to_string(), f.address(leader).to_string());

  // declare() refuses an address that is not the node's own identity.
  auto forger_store = f.store(forger);
  EXPECT_FALSE(f.run(forger_store.declare(group, Declaration{f.address(other), now + 10})));

  // Under the forger's own (validly signed) subkey, which holds one entry at a
  // time: a peer id nobody holds, then another peer's address. Stored, never listed.
  Bytes own_subkey = f.owner_subkey(forger);
  PeerAddress fake = f.address(other);
  fake.peer.bytes[0] ^= 0xff;
  const auto invented =
      f.run(f.dht.node(forger)->store(key, own_subkey, to_bytes(fake.to_string()), now + 5));
  EXPECT_TRUE(invented.ok());
  EXPECT_EQ(leader_of(f.list(8, group)).address.to_string(), f.address(leader).to_string());
  const auto promoted = f.run(
      f.dht.node(forger)->store(key, own_subkey, to_bytes(f.address(other).to_string()), now + 10));
  EXPECT_TRUE(promoted.ok());

  // Re-declaring the leader under its own subkey (later, so it would stop leading):
  // the forger's node cannot sign it and refuses it locally...
  Bytes leader_subkey = f.owner_subkey(leader);
  const auto redeclared = f.run(f.dht.node(forger)->store(
      key, leader_subkey, to_bytes(f.address(leader).to_string()), now + 60));
  EXPECT_EQ(redeclared.status, dht::StoreStatus::invalid);
  // ...and a node that skips its own checks gets it refused by every other replica.
  dht::DhtOptions careless;
  careless.validator = std::make_shared<AcceptEverything>();
  auto rogue = f.run(f.dht.add_node(false, careless));
  const auto pushed =
      f.run(rogue->store(key, leader_subkey, to_bytes(f.address(leader).to_string()), now + 60));
  EXPECT_LE(pushed.replicas, 1u);  // at most the rogue node itself
  const auto replaced =
      f.run(rogue->store(key, leader_subkey, to_bytes(f.address(other).to_string()), now + 1));
  EXPECT_LE(replaced.replicas, 1u);

  // Every honest reader still sees exactly the two honest declarations, the leader first.
  for (std::size_t reader : {0u, 2u, 6u, 9u}) {
    auto found = f.list(reader, group);
    ASSERT_EQ(found.size(), 2u) << "reader " << reader;
    const Declaration first = leader_of(found);
    EXPECT_EQ(first.address.to_string(), f.address(leader).to_string()) << "reader " << reader;
    EXPECT_NEAR(first.expiration, now + 30, 1e-6);
  }
}

TEST(GroupKeyStore, MatchmakingOverTheDhtIgnoresAForgedEarlierDeclaration) {
  DhtFixture f(10);
  const std::size_t forger = 9;
  const std::vector<std::size_t> peers{0, 2, 4, 6};
  MatchmakingOptions options;
  options.prefix = "grid";
  options.target_group_size = 4;
  options.min_group_size = 2;
  options.matchmaking_time = 2500ms;
  options.settle_time = 300ms;
  std::vector<std::unique_ptr<Matchmaker>> mm;
  for (std::size_t i : peers)
    mm.push_back(std::make_unique<Matchmaker>(
        f.dht.node(i)->rpc(), std::make_shared<DhtGroupKeyStore>(f.dht.node(i)), options));
  // Before round 0 the forger declares the last peer, expiring before anyone
  // else's declaration: unfiltered, that peer would lead the round.
  const Bytes key = to_bytes("averaging:grid/0");
  const auto forged = f.run(f.dht.node(forger)->store(key, f.owner_subkey(forger),
                                                      to_bytes(f.address(peers.back()).to_string()),
                                                      dht::system_dht_time() + 1.8));
  ASSERT_TRUE(forged.ok());

  // The first peer starts first, so its honest declaration is the earliest.
  std::vector<std::future<std::optional<GroupInfo>>> futures;
  futures.push_back(
      asio::co_spawn(f.swarm.ctx, mm[0]->find_group(1.0f, 5, Clock::now() + 6s), asio::use_future));
  auto started = asio::co_spawn(f.swarm.ctx, test::sleep_for(150ms), asio::use_future);
  test::wait(f.swarm.ctx, started);
  for (std::size_t i = 1; i < mm.size(); ++i)
    futures.push_back(asio::co_spawn(f.swarm.ctx, mm[i]->find_group(1.0f, 5, Clock::now() + 6s),
                                     asio::use_future));
  for (auto& future : futures) {
    const auto group = test::wait(f.swarm.ctx, future);
    ASSERT_TRUE(group.has_value());
    ASSERT_EQ(group->members.size(), peers.size());
    EXPECT_EQ(group->members.front().address.to_string(),
              f.address(peers.front()).to_string());  // leader first
  }
  EXPECT_TRUE(mm[0]->stats().led_last_round);
  EXPECT_FALSE(mm.back()->stats().led_last_round);
}

TEST(GroupKeyStore, StateDownloadOverTheDhtUsesOnlySelfDeclaredDonors) {
  DhtFixture f(8);
  StateSnapshot fresh;
  fresh.epoch = 12;
  fresh.metadata = Bytes{12};
  fresh.tensors = {std::vector<float>(3000), std::vector<float>(17)};
  for (auto& t : fresh.tensors)
    for (std::size_t k = 0; k < t.size(); ++k) t[k] = static_cast<float>(k % 31) - 7.5f;
  StateSnapshot stale = fresh;
  stale.epoch = 11;
  std::vector<std::unique_ptr<StateDonor>> donors;
  for (std::size_t i : {1u, 2u, 3u}) {
    donors.push_back(std::make_unique<StateDonor>(f.dht.node(i)->rpc(), 256));
    donors.back()->publish(i == 3 ? stale : fresh);
  }
  const double expiration = dht::system_dht_time() + 60;
  for (std::size_t i : {0u, 1u}) {  // donors on nodes 1 and 2 announce themselves
    auto store = f.store(i + 1);
    EXPECT_TRUE(f.run(donors[i]->announce(store, "job", expiration)));
  }
  // The forger announces the stale donor (node 3) under its own subkey: ignored.
  const auto forged = f.run(f.dht.node(6)->store(to_bytes("averaging:job/state"), f.owner_subkey(6),
                                                 to_bytes(f.address(3).to_string()), expiration));
  ASSERT_TRUE(forged.ok());

  auto joiner = f.store(5);
  DownloadStats stats;
  const StateSnapshot got =
      f.run(download_state(f.dht.node(5)->rpc(), joiner, {"job", Clock::now() + 10s}, &stats));
  EXPECT_EQ(got.epoch, fresh.epoch);
  EXPECT_EQ(got.metadata, fresh.metadata);
  EXPECT_EQ(got.tensors, fresh.tensors);
  EXPECT_EQ(stats.donors_used, 2u);
  EXPECT_EQ(stats.donors_refused, 0u);  // the stale donor was never asked
  EXPECT_EQ(donors[2]->chunks_served(), 0u);
}

}  // namespace
}  // namespace apiary::averaging
