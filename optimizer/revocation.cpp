#include "optimizer/revocation.hpp"

#include "core/codec.hpp"
#include "core/error.hpp"

#include <algorithm>
#include <string_view>

namespace apiary::optimizer {

namespace {

constexpr std::uint64_t kVersion = 1;
constexpr std::string_view kDomain = "apiary.revocations/1";

void write_fields(codec::Writer& w, const RevocationList& list) {
  w.uint(kVersion).str(list.run).uint(list.issued_at);
  w.array(static_cast<std::uint32_t>(list.peers.size()));
  for (const auto& peer : list.peers) w.bin(peer.bytes);
}

// What the run key signs: [domain, the first four fields].
Bytes signed_message(const RevocationList& list) {
  codec::Writer w(64 + 22 * list.peers.size());
  w.array(5).str(kDomain);
  write_fields(w, list);
  return w.take();
}

}  // namespace

Bytes RevocationList::encode() const {
  codec::Writer w(64 + 22 * peers.size());
  w.array(5);
  write_fields(w, *this);
  w.bin(signature);
  return w.take();
}

RevocationList RevocationList::decode(ByteSpan bytes) {
  codec::Limits limits;
  limits.max_objects = kMaxRevokedPeers + 16;
  limits.max_array = kMaxRevokedPeers;
  auto doc = codec::parse(bytes, limits);
  auto fields = doc.root().array("revocations", 5, 5);
  if (fields.next().uint("revocations.version") != kVersion)
    throw Error(Errc::bad_message, "revocations.version: unsupported");
  RevocationList list;
  list.run = std::string(fields.next().str("revocations.run", 255));
  if (list.run.empty()) throw Error(Errc::bad_message, "revocations.run: empty");
  list.issued_at = fields.next().uint("revocations.issued_at");
  auto peers = fields.next().array("revocations.peers", 0, kMaxRevokedPeers);
  list.peers.reserve(peers.size());
  while (!peers.done()) {
    const ByteSpan id = peers.next().fixed_bin("revocations.peer", PeerId::size);
    PeerId peer;
    std::copy(id.begin(), id.end(), peer.bytes.begin());
    if (!list.peers.empty() && !(list.peers.back() < peer))
      throw Error(Errc::bad_message, "revocations.peers: not sorted and unique");
    list.peers.push_back(peer);
  }
  const ByteSpan signature = fields.next().fixed_bin("revocations.signature", 64);
  std::copy(signature.begin(), signature.end(), list.signature.begin());
  return list;
}

bool RevocationList::signed_by(const PublicKey& run_key) const {
  try {
    return run_key.verify(signed_message(*this), signature);
  } catch (const Error&) {
    return false;
  }
}

RevocationList sign_revocations(const Identity& run_key, std::string run, std::uint64_t issued_at,
                                std::vector<PeerId> peers) {
  std::sort(peers.begin(), peers.end());
  peers.erase(std::unique(peers.begin(), peers.end()), peers.end());
  if (peers.size() > kMaxRevokedPeers)
    throw Error(Errc::invalid_argument, "a revocation list holds at most " +
                                            std::to_string(kMaxRevokedPeers) + " peers, not " +
                                            std::to_string(peers.size()));
  if (run.empty() || run.size() > 255)
    throw Error(Errc::invalid_argument, "revocations: run name must be 1..255 bytes");
  RevocationList list{std::move(run), issued_at, std::move(peers), {}};
  list.signature = run_key.sign(signed_message(list));
  return list;
}

Revocations::Update Revocations::update(const RevocationList& list) {
  if (list.run != run_) return Update::other_run;
  if (!list.signed_by(run_key_)) return Update::bad_signature;
  std::lock_guard lock(mutex_);
  if (current_ && list.issued_at <= current_->issued_at) return Update::not_newer;
  current_ = list;
  revoked_ = std::unordered_set<PeerId>(list.peers.begin(), list.peers.end());
  return Update::accepted;
}

bool Revocations::revoked(const PeerId& peer) const {
  std::lock_guard lock(mutex_);
  return revoked_.contains(peer);
}

std::size_t Revocations::size() const {
  std::lock_guard lock(mutex_);
  return revoked_.size();
}

std::optional<RevocationList> Revocations::current() const {
  std::lock_guard lock(mutex_);
  return current_;
}

const char* to_string(Revocations::Update update) noexcept {
  switch (update) {
    case Revocations::Update::accepted:
      return "accepted";
    case Revocations::Update::not_newer:
      return "not newer than the list in force";
    case Revocations::Update::other_run:
      return "for another run";
    case Revocations::Update::bad_signature:
      return "not signed by the run key";
  }
  return "?";
}

}  // namespace apiary::optimizer
