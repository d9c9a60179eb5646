#include "optimizer/membership.hpp"

#include "core/error.hpp"

#include <gtest/gtest.h>

#include <unistd.h>
#include <filesystem>
#include <fstream>

using namespace apiary;
using namespace apiary::optimizer;

TEST(Membership, ValidTokenAdmitsOnlyItsOwnPeer) {
  auto run_key = Identity::generate();
  auto alice = Identity::generate();
  auto mallory = Identity::generate();
  auto token = issue_token(run_key, "demo", alice.peer_id(), 2000);
  auto admit = make_admit_check(run_key.public_key(), "demo", [] { return std::uint64_t{1000}; });
  const Bytes bytes = token.encode();
  EXPECT_TRUE(admit(alice.public_key(), bytes));
  EXPECT_FALSE(admit(mallory.public_key(), bytes)) << "a copied token must not admit another peer";
}

TEST(Membership, RefusesExpiredForgedWrongRunAndGarbage) {
  auto run_key = Identity::generate();
  auto other_key = Identity::generate();
  auto alice = Identity::generate();
  auto admit = make_admit_check(run_key.public_key(), "demo", [] { return std::uint64_t{1000}; });
  EXPECT_FALSE(
      admit(alice.public_key(), issue_token(run_key, "demo", alice.peer_id(), 999).encode()));
  EXPECT_FALSE(
      admit(alice.public_key(), issue_token(other_key, "demo", alice.peer_id(), 2000).encode()));
  EXPECT_FALSE(
      admit(alice.public_key(), issue_token(run_key, "other", alice.peer_id(), 2000).encode()));
  auto tampered = issue_token(run_key, "demo", alice.peer_id(), 2000);
  tampered.expiration = 5000;  // extending a token invalidates the signature
  EXPECT_FALSE(admit(alice.public_key(), tampered.encode()));
  EXPECT_FALSE(admit(alice.public_key(), Bytes{}));
  EXPECT_FALSE(admit(alice.public_key(), Bytes(200, 0x41)));
}

TEST(Membership, FileRoundTripAndMalformedFile) {
  auto run_key = Identity::generate();
  auto peer = Identity::generate();
  auto token = issue_token(run_key, "demo", peer.peer_id(), 12345);
  auto file =
      std::filesystem::temp_directory_path() / ("apiary-token-" + std::to_string(::getpid()));
  save_token(file, {token, run_key.public_key()});
  auto loaded = load_token(file);
  EXPECT_EQ(loaded.token.encode(), token.encode());
  EXPECT_EQ(loaded.run_key, run_key.public_key());
  EXPECT_TRUE(loaded.token.signed_by(loaded.run_key));
  // A token paired with another run key is refused on load.
  save_token(file, {token, peer.public_key()});
  EXPECT_THROW(load_token(file), Error);
  { std::ofstream(file) << "not hex\n"; }
  EXPECT_THROW(load_token(file), Error);
  std::filesystem::remove(file);
}
