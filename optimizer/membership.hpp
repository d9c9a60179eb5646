#pragma once
// Membership tokens for permissioned runs (`--auth token`).
//
// The coordinator's run key signs (run name, peer id, expiration). A peer
// presents its token in the transport handshake (TransportOptions::own_token)
// and every peer checks the other side's token with make_admit_check(): the
// signature must verify under the run's public key, the token must name the
// run and the connecting peer's own id, and it must not have expired. A token
// copied from another peer is therefore useless.
//
// Encoding (binary, then hex in token files):
//   "APTK" | u8 version=1 | u8 run_len | run | 20-byte peer id
//   | u64 expiration (unix seconds, little-endian) | 64-byte Ed25519 signature
// Errors: parse/load throw apiary::Error{bad_message | io_error}.
#include "core/bytes.hpp"
#include "core/identity.hpp"

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>

namespace apiary::optimizer {

struct MembershipToken {
  std::string run;
  PeerId peer;
  std::uint64_t expiration = 0;  // unix seconds
  Signature signature{};

  Bytes encode() const;
  static MembershipToken decode(ByteSpan bytes);
  // Signature check only (not expiry or peer binding).
  bool signed_by(const PublicKey& run_key) const;
};

MembershipToken issue_token(const Identity& run_key, const std::string& run, const PeerId& peer,
                            std::uint64_t expiration);

// A token file: the token and the run's public key, each as hex on its own
// line (the joiner needs the run key to check every other peer's token).
struct TokenFile {
  MembershipToken token;
  PublicKey run_key;
};
void save_token(const std::filesystem::path& file, const TokenFile& contents);
TokenFile load_token(const std::filesystem::path& file);

// The TransportOptions::admit check for a token run. `now` returns unix seconds.
std::function<bool(const PublicKey& remote, ByteSpan token)> make_admit_check(
    PublicKey run_key, std::string run, std::function<std::uint64_t()> now = {});

}  // namespace apiary::optimizer
