#include "optimizer/membership.hpp"

#include "core/error.hpp"
#include "optimizer/revocation.hpp"

#include <chrono>
#include <cstring>
#include <fstream>

namespace apiary::optimizer {

namespace {

constexpr char kMagic[4] = {'A', 'P', 'T', 'K'};
constexpr std::uint8_t kVersion = 1;
constexpr std::size_t kFixed = 4 + 1 + 1 + PeerId::size + 8;

Bytes signed_part(const MembershipToken& t) {
  if (t.run.empty() || t.run.size() > 255)
    throw Error(Errc::invalid_argument, "token: run name must be 1..255 bytes");
  Bytes out;
  out.reserve(kFixed + t.run.size() + 64);
  out.insert(out.end(), kMagic, kMagic + 4);
  out.push_back(kVersion);
  out.push_back(static_cast<std::uint8_t>(t.run.size()));
  out.insert(out.end(), t.run.begin(), t.run.end());
  out.insert(out.end(), t.peer.bytes.begin(), t.peer.bytes.end());
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<std::uint8_t>(t.expiration >> (8 * i)));
  return out;
}

}  // namespace

std::uint64_t unix_seconds() {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::seconds>(
                                        std::chrono::system_clock::now().time_since_epoch())
                                        .count());
}

Bytes MembershipToken::encode() const {
  Bytes out = signed_part(*this);
  out.insert(out.end(), signature.begin(), signature.end());
  return out;
}

MembershipToken MembershipToken::decode(ByteSpan bytes) {
  auto fail = [](const char* why) -> MembershipToken {
    throw Error(Errc::bad_message, std::string("malformed membership token: ") + why);
  };
  if (bytes.size() < kFixed + 1 + 64) return fail("too short");
  if (std::memcmp(bytes.data(), kMagic, 4) != 0) return fail("bad magic");
  if (bytes[4] != kVersion) return fail("unsupported version");
  const std::size_t run_len = bytes[5];
  if (run_len == 0 || bytes.size() != kFixed + run_len + 64) return fail("wrong length");
  MembershipToken t;
  t.run.assign(reinterpret_cast<const char*>(bytes.data() + 6), run_len);
  std::size_t pos = 6 + run_len;
  std::memcpy(t.peer.bytes.data(), bytes.data() + pos, PeerId::size);
  pos += PeerId::size;
  for (int i = 0; i < 8; ++i) t.expiration |= static_cast<std::uint64_t>(bytes[pos + i]) << (8 * i);
  pos += 8;
  std::memcpy(t.signature.data(), bytes.data() + pos, 64);
  return t;
}

bool MembershipToken::signed_by(const PublicKey& run_key) const {
  const Bytes message = signed_part(*this);
  return run_key.verify(message, signature);
}

MembershipToken issue_token(const Identity& run_key, const std::string& run, const PeerId& peer,
                            std::uint64_t expiration) {
  MembershipToken t{run, peer, expiration, {}};
  t.signature = run_key.sign(signed_part(t));
  return t;
}

void save_token(const std::filesystem::path& file, const TokenFile& contents) {
  std::ofstream out(file, std::ios::trunc);
  out << to_hex(contents.token.encode()) << '\n' << to_hex(contents.run_key.bytes) << '\n';
  out.flush();
  if (!out) throw Error(Errc::io_error, "cannot write token file " + file.string());
}

TokenFile load_token(const std::filesystem::path& file) {
  std::ifstream in(file);
  if (!in) throw Error(Errc::io_error, "cannot read token file " + file.string());
  auto read_hex_line = [&](const char* what) {
    std::string line;
    std::getline(in, line);
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
    auto bytes = from_hex(line);
    if (!bytes || bytes->empty())
      throw Error(Errc::bad_message,
                  "token file " + file.string() + ": line with the " + what + " is not hex");
    return *bytes;
  };
  TokenFile contents;
  contents.token = MembershipToken::decode(read_hex_line("token"));
  const Bytes key = read_hex_line("run key");
  if (key.size() != PublicKey::size)
    throw Error(Errc::bad_message, "token file " + file.string() + ": bad run key");
  std::copy(key.begin(), key.end(), contents.run_key.bytes.begin());
  if (!contents.token.signed_by(contents.run_key))
    throw Error(Errc::bad_message,
                "token file " + file.string() + ": the token is not signed by the run key");
  return contents;
}

std::function<bool(const PublicKey& remote, ByteSpan token)> make_admit_check(
    PublicKey run_key, std::string run, std::function<std::uint64_t()> now,
    std::shared_ptr<const Revocations> revoked) {
  if (!now) now = unix_seconds;
  return [run_key, run = std::move(run), now = std::move(now), revoked = std::move(revoked)](
             const PublicKey& remote, ByteSpan bytes) {
    try {
      const auto token = MembershipToken::decode(bytes);
      return token.run == run && token.peer == remote.peer_id() && token.expiration > now() &&
             !(revoked && revoked->revoked(token.peer)) && token.signed_by(run_key);
    } catch (const Error&) {
      return false;
    }
  };
}

bool membership_lapsed(const PublicKey& remote, ByteSpan token, std::uint64_t now,
                       const Revocations* revoked) {
  try {
    const auto decoded = MembershipToken::decode(token);
    return decoded.peer != remote.peer_id() || decoded.expiration <= now ||
           (revoked && revoked->revoked(decoded.peer));
  } catch (const Error&) {
    return true;
  }
}

}  // namespace apiary::optimizer
