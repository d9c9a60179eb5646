#pragma once
// Membership tokens for permissioned runs (`--auth token`).
//
// The coordinator's run key signs (run name, peer id, expiration). A peer
// presents its token in the transport handshake (TransportOptions::own_token)
// and every peer checks the other side's token with make_admit_check(): the
// signature must verify under the run's public key, the token must name the
// run and the connecting peer's own id, and it must not have expired. A token
// copied from another peer is therefore useless. With a Revocations set
// (optimizer/revocation.hpp) the check also refuses revoked peers, and
// membership_lapsed() tells which open connections to close once their peer's
// token expired or was revoked after the handshake.
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
#include <memory>
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

class Revocations;

// The TransportOptions::admit check for a token run. `now` returns unix
// seconds (default: the system clock); `revoked` (optional, shared with its
// refresher) refuses the peers it lists.
std::function<bool(const PublicKey& remote, ByteSpan token)> make_admit_check(
    PublicKey run_key, std::string run, std::function<std::uint64_t()> now = {},
    std::shared_ptr<const Revocations> revoked = nullptr);

// Whether a connection admitted with `token` must now be closed: the token
// (its signature was checked at the handshake) expired by `now`, or its peer
// is revoked. An undecodable token counts as lapsed.
bool membership_lapsed(const PublicKey& remote, ByteSpan token, std::uint64_t now,
                       const Revocations* revoked);

// Seconds since the unix epoch (the clock tokens and revocations use).
std::uint64_t unix_seconds();

}  // namespace apiary::optimizer
