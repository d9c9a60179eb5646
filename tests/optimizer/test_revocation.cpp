// Revocation of token-run members (optimizer/revocation, membership_guard):
// the signed list's encoding and signature, the admit check with revocations,
// the sweep that closes expired or revoked members' connections (fake clock,
// in-process transport), and the list in the DHT (in-process swarm): only
// the run key's entry counts, and a malformed one never breaks a refresh.
#include "core/codec.hpp"
#include "core/error.hpp"
#include "dht/swarm.hpp"
#include "dht/validator.hpp"
#include "net/inproc_transport.hpp"
#include "optimizer/membership.hpp"
#include "optimizer/membership_guard.hpp"
#include "optimizer/revocation.hpp"
#include "tests/dht/swarm_util.hpp"

#include <gtest/gtest.h>
#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <asio/use_awaitable.hpp>

using namespace apiary;
using namespace apiary::optimizer;
using apiary::dht::testing::run_body;

namespace {

Errc decode_error(const Bytes& bytes, std::string* message = nullptr) {
  try {
    RevocationList::decode(bytes);
  } catch (const Error& e) {
    if (message) *message = e.what();
    return e.code();
  }
  return Errc::ok;
}

}  // namespace

TEST(RevocationList, RoundTripsAndVerifiesUnderTheRunKeyOnly) {
  const auto run_key = Identity::generate();
  const auto other_key = Identity::generate();
  const auto a = Identity::generate().peer_id();
  const auto b = Identity::generate().peer_id();
  const auto list = sign_revocations(run_key, "demo", 1000, {b, a, b});
  ASSERT_EQ(list.peers.size(), 2u) << "sorted and de-duplicated";
  EXPECT_TRUE(list.peers[0] < list.peers[1]);
  const auto decoded = RevocationList::decode(list.encode());
  EXPECT_EQ(decoded.run, "demo");
  EXPECT_EQ(decoded.issued_at, 1000u);
  EXPECT_EQ(decoded.peers, list.peers);
  EXPECT_TRUE(decoded.signed_by(run_key.public_key()));
  EXPECT_FALSE(decoded.signed_by(other_key.public_key()));
  auto tampered = decoded;
  tampered.peers.pop_back();  // dropping a revoked peer breaks the signature
  EXPECT_FALSE(tampered.signed_by(run_key.public_key()));
  auto later = decoded;
  later.issued_at = 2000;  // so does a forged issue time
  EXPECT_FALSE(later.signed_by(run_key.public_key()));
}

TEST(RevocationList, MalformedListsAreRefusedWithAClearError) {
  std::string message;
  EXPECT_EQ(decode_error(Bytes{0x93, 0xc1, 0x00}, &message), Errc::bad_message);
  EXPECT_EQ(decode_error(Bytes{}), Errc::bad_message);
  const auto run_key = Identity::generate();
  auto bytes = sign_revocations(run_key, "demo", 5, {Identity::generate().peer_id()}).encode();
  bytes.pop_back();  // truncated signature
  EXPECT_EQ(decode_error(bytes), Errc::bad_message);
  // Unsorted peers, a wrong id size, a wrong version: each named.
  const auto p = Identity::generate().peer_id();
  const auto q = Identity::generate().peer_id();
  const auto& [low, high] = p < q ? std::pair{p, q} : std::pair{q, p};
  codec::Writer w;
  w.array(5).uint(1).str("demo").uint(5).array(2).bin(high.bytes).bin(low.bytes).bin(Bytes(64, 0));
  EXPECT_EQ(decode_error(w.take(), &message), Errc::bad_message);
  EXPECT_NE(message.find("not sorted"), std::string::npos) << message;
  codec::Writer short_id;
  short_id.array(5).uint(1).str("demo").uint(5).array(1).bin(Bytes(19, 1)).bin(Bytes(64, 0));
  EXPECT_EQ(decode_error(short_id.take(), &message), Errc::bad_message);
  EXPECT_NE(message.find("revocations.peer"), std::string::npos) << message;
  codec::Writer version;
  version.array(5).uint(2).str("demo").uint(5).array(0).bin(Bytes(64, 0));
  EXPECT_EQ(decode_error(version.take(), &message), Errc::bad_message);
  EXPECT_NE(message.find("version"), std::string::npos) << message;
  // More peers than one DHT value holds: refused when signing.
  std::vector<PeerId> many(kMaxRevokedPeers + 1);
  for (std::size_t i = 0; i < many.size(); ++i) {
    many[i].bytes[0] = static_cast<std::uint8_t>(i);
    many[i].bytes[1] = static_cast<std::uint8_t>(i >> 8);
  }
  EXPECT_THROW(sign_revocations(run_key, "demo", 5, many), Error);
  many.pop_back();
  const auto full = sign_revocations(run_key, "demo", 5, many);
  EXPECT_LE(full.encode().size(), 64u * 1024 - 256) << "must fit one DHT value";
  EXPECT_EQ(RevocationList::decode(full.encode()).peers.size(), kMaxRevokedPeers);
}

TEST(Revocations, TakesOnlyNewerListsOfItsRunSignedByTheRunKey) {
  const auto run_key = Identity::generate();
  const auto mallory = Identity::generate();
  const auto alice = Identity::generate().peer_id();
  const auto bob = Identity::generate().peer_id();
  Revocations revocations(run_key.public_key(), "demo");
  EXPECT_EQ(revocations.update(sign_revocations(mallory, "demo", 10, {alice})),
            Revocations::Update::bad_signature);
  EXPECT_FALSE(revocations.revoked(alice)) << "a list not signed by the run key is ignored";
  EXPECT_EQ(revocations.update(sign_revocations(run_key, "other", 10, {alice})),
            Revocations::Update::other_run);
  EXPECT_EQ(revocations.update(sign_revocations(run_key, "demo", 10, {alice})),
            Revocations::Update::accepted);
  EXPECT_TRUE(revocations.revoked(alice));
  EXPECT_FALSE(revocations.revoked(bob));
  // An old list cannot be replayed to undo a revocation; a newer one can.
  EXPECT_EQ(revocations.update(sign_revocations(run_key, "demo", 10, {})),
            Revocations::Update::not_newer);
  EXPECT_TRUE(revocations.revoked(alice));
  EXPECT_EQ(revocations.update(sign_revocations(run_key, "demo", 11, {bob})),
            Revocations::Update::accepted);
  EXPECT_FALSE(revocations.revoked(alice));
  EXPECT_TRUE(revocations.revoked(bob));
  EXPECT_EQ(revocations.current()->issued_at, 11u);
}

TEST(Revocations, AdmitCheckRefusesRevokedPeersAndLapsedMembershipsAreFound) {
  const auto run_key = Identity::generate();
  const auto alice = Identity::generate();
  const auto bob = Identity::generate();
  auto revocations = std::make_shared<Revocations>(run_key.public_key(), "demo");
  std::uint64_t now = 1000;
  auto admit = make_admit_check(
      run_key.public_key(), "demo", [&] { return now; }, revocations);
  const Bytes alice_token = issue_token(run_key, "demo", alice.peer_id(), 2000).encode();
  const Bytes bob_token = issue_token(run_key, "demo", bob.peer_id(), 5000).encode();
  EXPECT_TRUE(admit(alice.public_key(), alice_token));
  EXPECT_FALSE(membership_lapsed(alice.public_key(), alice_token, now, revocations.get()));
  ASSERT_EQ(revocations->update(sign_revocations(run_key, "demo", 1, {alice.peer_id()})),
            Revocations::Update::accepted);
  EXPECT_FALSE(admit(alice.public_key(), alice_token)) << "a revoked peer's handshake is refused";
  EXPECT_TRUE(membership_lapsed(alice.public_key(), alice_token, now, revocations.get()));
  EXPECT_TRUE(admit(bob.public_key(), bob_token));
  EXPECT_FALSE(membership_lapsed(bob.public_key(), bob_token, now, revocations.get()));
  // Expiry, as the sweep sees it: at the expiration second the membership ends.
  EXPECT_FALSE(membership_lapsed(bob.public_key(), bob_token, 4999, nullptr));
  EXPECT_TRUE(membership_lapsed(bob.public_key(), bob_token, 5000, nullptr));
  EXPECT_TRUE(membership_lapsed(bob.public_key(), Bytes{}, now, nullptr));
  EXPECT_TRUE(membership_lapsed(alice.public_key(), bob_token, now, nullptr))
      << "a token of another peer";
}

// Members connect to a peer of the run; the sweep (fake clock) closes the
// connection whose token expired, then the one revoked, and no other.
TEST(MembershipSweep, ClosesExpiredThenRevokedMembersOnly) {
  asio::io_context io;
  auto network = InprocNetwork::create(io.get_executor());
  const auto run_key = Identity::generate();
  const auto host = Identity::generate();
  auto revocations = std::make_shared<Revocations>(run_key.public_key(), "demo");
  std::uint64_t now = 1000;
  auto admit = make_admit_check(
      run_key.public_key(), "demo", [&] { return now; }, revocations);
  auto member = [&](const Identity& id, std::uint64_t expiration) {
    TransportOptions options;
    options.own_token = issue_token(run_key, "demo", id.peer_id(), expiration).encode();
    options.admit = admit;
    return options;
  };
  auto host_transport = network->create_transport(host, member(host, 100000));
  std::vector<ConnectionPtr> accepted;
  host_transport->listen([&](ConnectionPtr c) { accepted.push_back(std::move(c)); });
  const auto short_lived = Identity::generate();
  const auto long_lived = Identity::generate();
  const auto revoked = Identity::generate();
  auto t1 = network->create_transport(short_lived, member(short_lived, 2000));
  auto t2 = network->create_transport(long_lived, member(long_lived, 9000));
  auto t3 = network->create_transport(revoked, member(revoked, 9000));
  std::vector<ConnectionPtr> dialled;
  const std::vector<TransportPtr> members{t1, t2, t3};
  run_body(io, [&]() -> asio::awaitable<void> {
    for (const auto& t : members)
      dialled.push_back(co_await t->connect(host_transport->local_address()));
    co_await asio::post(io.get_executor(), asio::use_awaitable);  // deliver the accepts
  });
  ASSERT_EQ(accepted.size(), 3u);
  EXPECT_EQ(close_lapsed_members(*host_transport, 1500, revocations.get()), 0u);
  EXPECT_EQ(close_lapsed_members(*host_transport, 2500, revocations.get()), 1u);
  EXPECT_FALSE(accepted[0]->is_open()) << "the expired member's connection";
  EXPECT_TRUE(accepted[1]->is_open());
  EXPECT_TRUE(accepted[2]->is_open());
  ASSERT_EQ(revocations->update(sign_revocations(run_key, "demo", 1, {revoked.peer_id()})),
            Revocations::Update::accepted);
  EXPECT_EQ(close_lapsed_members(*host_transport, 2500, revocations.get()), 1u);
  EXPECT_FALSE(accepted[2]->is_open()) << "the revoked member's connection";
  EXPECT_TRUE(accepted[1]->is_open()) << "the other member keeps its connection";
  // The revoked member's side sees the close; its redial is refused.
  io.poll();
  io.restart();  // poll() leaves the context stopped once it runs out of work
  bool refused = false;
  now = 2500;
  run_body(io, [&]() -> asio::awaitable<void> {
    try {
      co_await t3->connect(host_transport->local_address());
    } catch (const Error& e) {
      refused = e.code() == Errc::permission_denied;
    }
  });
  EXPECT_TRUE(refused);
  for (auto* t : {&t1, &t2, &t3, &host_transport}) (*t)->close();
  io.poll();
}

// The list in the DHT: the run key's entry counts, a stranger's is ignored,
// and a malformed one is an error for fetch but not for the guard's refresh.
TEST(RevocationDirectory, OnlyTheRunKeysListCountsAndMalformedOnesNeverBreakARefresh) {
  asio::io_context io;
  auto network = InprocNetwork::create(io.get_executor());
  dht::LocalSwarm swarm(io.get_executor(), dht::LocalSwarm::inproc(network), {}, 5);
  const auto run_key = Identity::generate();
  const auto stranger = Identity::generate();
  const auto alice = Identity::generate().peer_id();
  const auto bob = Identity::generate().peer_id();
  auto revocations = std::make_shared<Revocations>(run_key.public_key(), "demo");
  // Outside the coroutine: GCC 12 mishandles initializer lists in coroutine frames.
  const std::vector<PeerId> just_alice{alice};
  const std::vector<PeerId> just_bob{bob};
  const Bytes garbage_value{0x93, 0x01};
  run_body(io, [&]() -> asio::awaitable<void> {
    co_await swarm.grow(5);
    auto signer_options = [](const Identity& id) {
      dht::DhtOptions options;
      options.validator = std::make_shared<dht::OwnerSignatureValidator>(id);
      return options;
    };
    auto coordinator = co_await swarm.add_node(false, signer_options(run_key));
    auto squatter = co_await swarm.add_node(false, signer_options(stranger));
    auto reader = swarm.node(2);
    auto none = co_await fetch_revocations(*reader, "demo", run_key.public_key());
    EXPECT_FALSE(none.has_value());

    // A stranger's list under its own owner subkey, "revoking" bob: ignored.
    const auto forged = sign_revocations(stranger, "demo", 99, just_bob);
    auto squat = co_await publish_revocations(*squatter, stranger.public_key(), forged);
    EXPECT_TRUE(squat.ok());
    const auto list = sign_revocations(run_key, "demo", 10, just_alice);
    auto stored = co_await publish_revocations(*coordinator, run_key.public_key(), list);
    EXPECT_TRUE(stored.ok());
    auto fetched = co_await fetch_revocations(*reader, "demo", run_key.public_key());
    EXPECT_TRUE(fetched && fetched->peers == just_alice);

    auto guard = std::make_shared<MembershipGuard>(reader, revocations);
    co_await guard->refresh();
    EXPECT_TRUE(revocations->revoked(alice));
    EXPECT_FALSE(revocations->revoked(bob)) << "the stranger's list must not count";

    // The run key's entry replaced by garbage (a later expiration wins).
    const std::string marker = dht::OwnerSignatureValidator::owner_marker(run_key.public_key());
    const std::string key = "demo.revoked";
    auto garbage = co_await coordinator->store(Bytes(key.begin(), key.end()),
                                               Bytes(marker.begin(), marker.end()), garbage_value,
                                               dht::system_dht_time() + kRevocationTtlSeconds + 60);
    EXPECT_TRUE(garbage.ok());
    bool refused = false;
    try {
      co_await fetch_revocations(*reader, "demo", run_key.public_key());
    } catch (const Error& e) {
      refused = e.code() == Errc::bad_message &&
                std::string(e.what()).find("malformed") != std::string::npos;
    }
    EXPECT_TRUE(refused);
    co_await guard->refresh();  // logs, never throws, keeps the list in force
    EXPECT_TRUE(revocations->revoked(alice));
    guard->stop();
  });
  swarm.stop();
  io.poll();
}
