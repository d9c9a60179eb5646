// Identity, key files, peer ids, addresses and BLAKE2b helpers.
#include "core/error.hpp"
#include "core/hash.hpp"
#include "core/identity.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <string>

using namespace apiary;
namespace fs = std::filesystem;

namespace {

// A fresh temporary directory, removed afterwards.
struct TempDir {
  fs::path path;
  TempDir() {
    std::random_device rd;
    path = fs::temp_directory_path() /
           ("apiary-test-" + std::to_string(::getpid()) + "-" + std::to_string(rd()));
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

Errc code_of(const std::function<void()>& fn, std::string* message = nullptr) {
  try {
    fn();
  } catch (const Error& e) {
    if (message) *message = e.what();
    return e.code();
  }
  return Errc::ok;
}

void write_file(const fs::path& file, const std::string& text, mode_t mode = 0600) {
  {
    std::ofstream out(file, std::ios::trunc);
    out << text;
  }
  ::chmod(file.c_str(), mode);
}

}  // namespace

TEST(Hash, KnownBlake2bVectors) {
  // BLAKE2b-256("abc") and BLAKE2b-160("") from the reference implementation.
  EXPECT_EQ(to_hex(hash256(as_bytes("abc"))),
            "bddd813c634239723171ef3fee98579b94964e3bb1cb3e427262c8c068d52319");
  EXPECT_EQ(to_hex(hash160(as_bytes(""))), "3345524abf6bbe1809449224b5972c41790b6cf2");
}

TEST(Hash, IncrementalMatchesOneShot) {
  Hasher hasher;
  hasher.update(as_bytes("hello ")).update(as_bytes("world"));
  EXPECT_EQ(hasher.finalize256(), hash256(as_bytes("hello world")));
  EXPECT_EQ(code_of([&] { hasher.update(as_bytes("x")); }), Errc::failed_precondition);
  EXPECT_NE(keyed_hash256(as_bytes("0123456789abcdef"), as_bytes("m")), hash256(as_bytes("m")));
  EXPECT_EQ(code_of([] { Hasher bad(8); }), Errc::invalid_argument);
}

TEST(Identity, PeerIdIsHashOfPublicKeyAndSignaturesVerify) {
  Identity id = Identity::generate();
  EXPECT_EQ(id.peer_id(), id.public_key().peer_id());
  EXPECT_EQ(id.peer_id().bytes, hash160(id.public_key().bytes));
  EXPECT_EQ(id.peer_id().to_string().size(), 40u);
  auto sig = id.sign(as_bytes("message"));
  EXPECT_TRUE(id.public_key().verify(as_bytes("message"), sig));
  EXPECT_FALSE(id.public_key().verify(as_bytes("messagf"), sig));
  sig[0] ^= 1;
  EXPECT_FALSE(id.public_key().verify(as_bytes("message"), sig));
  EXPECT_FALSE(id.public_key().verify(as_bytes("message"), ByteSpan(sig.data(), 10)));
  EXPECT_NE(Identity::generate().peer_id(), id.peer_id());
  auto empty_sig = id.sign(ByteSpan{});
  EXPECT_TRUE(id.public_key().verify(ByteSpan{}, empty_sig));
  EXPECT_FALSE(id.public_key().verify(as_bytes("x"), empty_sig));
}

TEST(Identity, FromSeedIsDeterministic) {
  Bytes seed(32, 7);
  EXPECT_EQ(Identity::from_seed(seed).peer_id(), Identity::from_seed(seed).peer_id());
  EXPECT_EQ(code_of([] { Identity::from_seed(Bytes(31)); }), Errc::invalid_argument);
}

TEST(PeerId, ParseAndPrint) {
  Identity id = Identity::generate();
  auto text = id.peer_id().to_string();
  auto parsed = PeerId::parse(text);
  ASSERT_TRUE(parsed);
  EXPECT_EQ(*parsed, id.peer_id());
  EXPECT_FALSE(PeerId::parse(text.substr(1)));
  EXPECT_FALSE(PeerId::parse(text + "00"));
  EXPECT_FALSE(PeerId::parse(std::string(40, 'g')));
}

TEST(Identity, SaveLoadRoundTripWithMode0600) {
  TempDir dir;
  auto file = dir.path / "node.key";
  Identity id = Identity::generate();
  id.save(file);
  struct stat st {};
  ASSERT_EQ(::stat(file.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  Identity loaded = Identity::load(file);
  EXPECT_EQ(loaded.peer_id(), id.peer_id());
  EXPECT_EQ(loaded.public_key(), id.public_key());
  EXPECT_TRUE(loaded.public_key().verify(as_bytes("x"), id.sign(as_bytes("x"))));
  EXPECT_EQ(std::distance(fs::directory_iterator(dir.path), fs::directory_iterator()), 1)
      << "no temporary file is left behind";
}

TEST(Identity, SaveRefusesOverwriteUnlessAsked) {
  TempDir dir;
  auto file = dir.path / "node.key";
  Identity first = Identity::generate();
  first.save(file);
  Identity second = Identity::generate();
  EXPECT_EQ(code_of([&] { second.save(file); }), Errc::failed_precondition);
  EXPECT_EQ(Identity::load(file).peer_id(), first.peer_id());
  second.save(file, /*overwrite=*/true);
  EXPECT_EQ(Identity::load(file).peer_id(), second.peer_id());
}

TEST(Identity, LoadRefusesKeyReadableByOthers) {
  TempDir dir;
  auto file = dir.path / "open.key";
  Identity::generate().save(file);
  ::chmod(file.c_str(), 0644);
  std::string message;
  EXPECT_EQ(code_of([&] { Identity::load(file); }, &message), Errc::permission_denied);
  EXPECT_NE(message.find(file.string()), std::string::npos) << message;
  EXPECT_NE(message.find("chmod 600"), std::string::npos) << message;
  ::chmod(file.c_str(), 0640);
  EXPECT_EQ(code_of([&] { Identity::load(file); }), Errc::permission_denied);
  ::chmod(file.c_str(), 0600);
  EXPECT_NO_THROW(Identity::load(file));
}

TEST(Identity, LoadRefusesCorruptKeys) {
  TempDir dir;
  auto file = dir.path / "good.key";
  Identity id = Identity::generate();
  id.save(file);
  std::string good;
  {
    std::ifstream in(file);
    good.assign(std::istreambuf_iterator<char>(in), {});
  }
  auto flip_seed_digit = good;
  auto seed_at = flip_seed_digit.find("seed ") + 5;
  flip_seed_digit[seed_at] = flip_seed_digit[seed_at] == '0' ? '1' : '0';
  const std::vector<std::string> corrupt = {
      "",
      "garbage",
      good.substr(0, good.size() / 2),
      "apiary-ed25519-key v2" + good.substr(good.find('\n')),
      flip_seed_digit,  // seed no longer matches the recorded peer id
      good + "extra line\n",
      std::string(5000, 'a'),
  };
  for (std::size_t i = 0; i < corrupt.size(); ++i) {
    auto bad = dir.path / ("bad" + std::to_string(i) + ".key");
    write_file(bad, corrupt[i]);
    std::string message;
    EXPECT_EQ(code_of([&] { Identity::load(bad); }, &message), Errc::bad_message) << "case " << i;
    EXPECT_NE(message.find(bad.string()), std::string::npos) << message;
  }
  EXPECT_EQ(code_of([&] { Identity::load(dir.path / "missing.key"); }), Errc::io_error);
}
