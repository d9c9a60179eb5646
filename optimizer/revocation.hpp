#pragma once
// Revoking members of a token run (`--auth token`, optimizer/membership.hpp).
//
// The run key signs a revocation list: the run name, when it was issued, and
// the peer ids whose tokens no longer count. It lives in the DHT under key
// "<run>.revoked", subkey owner marker of the run key (as the run's
// configuration does, optimizer/run_directory.hpp), written by `apiary
// coordinator revoke` and republished by the coordinator. Every peer of the
// run keeps the newest list it has seen in a Revocations set, which the
// handshake's admit check consults (make_admit_check) and a periodic sweep
// applies to open connections (optimizer/membership_guard.hpp).
//
// Encoding (msgpack): [u8 version=1, str run, u64 issued_at (unix seconds),
// [bin20 peer id, …] (sorted, unique, at most kMaxRevokedPeers), bin64
// signature]. The run key signs the msgpack array ["apiary.revocations/1",
// the first four fields]. A newer list (larger issued_at) replaces an older one, so a
// revocation is undone by publishing a list without the peer.
// Errors: decode() throws apiary::Error{bad_message}; sign_revocations()
// throws {invalid_argument} for too many peers; Revocations never throws.
#include "core/bytes.hpp"
#include "core/identity.hpp"

#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_set>
#include <vector>

namespace apiary::optimizer {

// What fits one DHT value (64 KiB, dht/storage.hpp) with its signatures.
inline constexpr std::size_t kMaxRevokedPeers = 2800;

struct RevocationList {
  std::string run;
  std::uint64_t issued_at = 0;  // unix seconds
  std::vector<PeerId> peers;    // sorted, unique
  Signature signature{};

  Bytes encode() const;
  static RevocationList decode(ByteSpan bytes);
  bool signed_by(const PublicKey& run_key) const;
};

// Sorts and de-duplicates `peers`, then signs the list with the run key.
RevocationList sign_revocations(const Identity& run_key, std::string run, std::uint64_t issued_at,
                                std::vector<PeerId> peers);

// The newest revocation list of one run, signed by its run key. Thread-safe:
// the transport's admit check reads it on the network thread while a refresh
// updates it.
class Revocations {
 public:
  enum class Update { accepted, not_newer, other_run, bad_signature };

  Revocations(PublicKey run_key, std::string run) : run_key_(run_key), run_(std::move(run)) {}

  // Takes `list` when it is for this run, signed by the run key and newer
  // than the current one; otherwise leaves the set as it was.
  Update update(const RevocationList& list);
  bool revoked(const PeerId& peer) const;
  std::size_t size() const;
  // The list in force (nullopt before the first accepted one).
  std::optional<RevocationList> current() const;

  const PublicKey& run_key() const noexcept { return run_key_; }
  const std::string& run() const noexcept { return run_; }

 private:
  PublicKey run_key_;
  std::string run_;
  mutable std::mutex mutex_;
  std::optional<RevocationList> current_;
  std::unordered_set<PeerId> revoked_;
};

const char* to_string(Revocations::Update update) noexcept;

}  // namespace apiary::optimizer
