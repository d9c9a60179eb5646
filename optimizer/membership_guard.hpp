#pragma once
// Keeps a token run's membership current on one peer: fetches the run's
// revocation list from the DHT (optimizer/revocation.hpp; key
// "<run>.revoked", only the run key's owner-signed entry counts) every
// refresh_period, and every sweep_period closes the open connections whose
// peer's token expired or was revoked since the handshake
// (close_lapsed_members). The handshake's admit check reads the same
// Revocations set, so a revoked peer that redials is refused. With the run
// key (the coordinator) it also republishes the list it holds, so the list
// outlives the one-shot `apiary coordinator revoke` that wrote it.
//
// Threading: start(), stop() and refresh() on the DHT node's network thread.
// Errors: fetch_revocations() throws apiary::Error{bad_message} for a
// malformed list signed into the run key's entry; the guard's loop never
// throws (a failed refresh is logged and keeps the list in force).
#include "core/identity.hpp"
#include "dht/node.hpp"
#include "net/transport.hpp"
#include "optimizer/revocation.hpp"

#include <asio/awaitable.hpp>
#include <asio/steady_timer.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>

namespace apiary::optimizer {

// Lifetime of a stored list (dht/storage.cpp caps ".revoked" at 7 days).
inline constexpr double kRevocationTtlSeconds = 6 * 24 * 3600.0;

Bytes revocations_key(const std::string& run);

// Stores `list` under the run key's owner subkey; the node's validator must
// sign as the run key (dht::OwnerSignatureValidator(run key)).
asio::awaitable<dht::StoreResult> publish_revocations(dht::DhtNode& dht, const PublicKey& run_key,
                                                      const RevocationList& list);

// The run key's list for `run` (nullopt: none stored). Entries of any other
// owner are ignored; the run key's entry must decode, name `run` and carry
// the run key's signature, or Error{bad_message} says why not.
asio::awaitable<std::optional<RevocationList>> fetch_revocations(dht::DhtNode& dht,
                                                                 const std::string& run,
                                                                 const PublicKey& run_key);

// Closes `transport`'s connections whose membership lapsed at `now` (unix
// seconds): token expired or peer revoked (membership_lapsed). Returns how many.
std::size_t close_lapsed_members(Transport& transport, std::uint64_t now,
                                 const Revocations* revoked);

struct MembershipGuardOptions {
  std::chrono::milliseconds refresh_period{30000};  // revocation list fetch
  std::chrono::milliseconds sweep_period{5000};     // token expiry and revocation sweep
  // The run key (the coordinator only): republish the list in force this often.
  std::optional<Identity> republish_as;
  std::chrono::milliseconds republish_period{3600 * 1000};
  std::function<std::uint64_t()> now;  // unix seconds; default the system clock
};

class MembershipGuard : public std::enable_shared_from_this<MembershipGuard> {
 public:
  MembershipGuard(std::shared_ptr<dht::DhtNode> node, std::shared_ptr<Revocations> revocations,
                  MembershipGuardOptions options = {});

  // Starts the loop (a first refresh at once).
  void start();
  void stop();
  // Fetches the list, takes it if newer, and sweeps; failures are logged.
  asio::awaitable<void> refresh();
  // Closes the connections of lapsed members now; returns how many.
  std::size_t sweep();

  const Revocations& revocations() const noexcept { return *revocations_; }

 private:
  asio::awaitable<void> run();
  asio::awaitable<void> republish();

  std::weak_ptr<dht::DhtNode> node_;
  std::shared_ptr<Revocations> revocations_;
  MembershipGuardOptions options_;
  asio::steady_timer timer_;
  bool stopped_ = false;
  std::chrono::steady_clock::time_point last_republish_{};
};

}  // namespace apiary::optimizer
