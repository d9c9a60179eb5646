#include "optimizer/membership_guard.hpp"

#include "core/error.hpp"
#include "core/log.hpp"
#include "dht/validator.hpp"
#include "optimizer/membership.hpp"

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/redirect_error.hpp>
#include <asio/use_awaitable.hpp>

namespace apiary::optimizer {

Bytes revocations_key(const std::string& run) {
  const std::string key = run + ".revoked";
  return Bytes(key.begin(), key.end());
}

asio::awaitable<dht::StoreResult> publish_revocations(dht::DhtNode& dht, const PublicKey& run_key,
                                                      const RevocationList& list) {
  const std::string marker = dht::OwnerSignatureValidator::owner_marker(run_key);
  co_return co_await dht.store(revocations_key(list.run), Bytes(marker.begin(), marker.end()),
                               list.encode(), dht::system_dht_time() + kRevocationTtlSeconds);
}

asio::awaitable<std::optional<RevocationList>> fetch_revocations(dht::DhtNode& dht,
                                                                 const std::string& run,
                                                                 const PublicKey& run_key) {
  auto found = co_await dht.get(revocations_key(run), /*latest=*/true);
  if (!found || !found->is_dictionary) co_return std::nullopt;
  for (const auto& [subkey, entry] : found->subkeys) {
    const auto owner = dht::OwnerSignatureValidator::parse_owner_marker(subkey);
    if (!owner || *owner != run_key) continue;  // anyone may write their own entry: ignored
    RevocationList list;
    try {
      list = RevocationList::decode(entry.value);
    } catch (const Error& e) {
      throw Error(Errc::bad_message,
                  "run '" + run + "': the run key's revocation list is malformed: " + e.what());
    }
    if (list.run != run)
      throw Error(Errc::bad_message,
                  "run '" + run + "': the revocation list names run '" + list.run + "'");
    if (!list.signed_by(run_key))
      throw Error(Errc::bad_message,
                  "run '" + run + "': the revocation list is not signed by the run key");
    co_return list;
  }
  co_return std::nullopt;
}

std::size_t close_lapsed_members(Transport& transport, std::uint64_t now,
                                 const Revocations* revoked) {
  return transport.close_if([&](const Connection& connection) {
    if (!membership_lapsed(connection.remote_key(), connection.remote_token(), now, revoked))
      return false;
    log::info("closing the connection of peer {}: its membership {}",
              connection.remote_peer().to_string(),
              revoked && revoked->revoked(connection.remote_peer()) ? "was revoked" : "expired");
    return true;
  });
}

MembershipGuard::MembershipGuard(std::shared_ptr<dht::DhtNode> node,
                                 std::shared_ptr<Revocations> revocations,
                                 MembershipGuardOptions options)
    : node_(node),
      revocations_(std::move(revocations)),
      options_(std::move(options)),
      timer_(node->rpc().get_executor()) {
  if (!options_.now) options_.now = unix_seconds;
  if (!revocations_) throw Error(Errc::invalid_argument, "MembershipGuard: no revocation set");
}

void MembershipGuard::start() {
  asio::co_spawn(
      timer_.get_executor(), [self = shared_from_this()] { return self->run(); }, asio::detached);
}

void MembershipGuard::stop() {
  stopped_ = true;
  timer_.cancel();
}

std::size_t MembershipGuard::sweep() {
  auto node = node_.lock();
  if (!node) return 0;
  return close_lapsed_members(node->rpc().transport(), options_.now(), revocations_.get());
}

asio::awaitable<void> MembershipGuard::refresh() {
  auto node = node_.lock();
  if (!node) co_return;
  try {
    auto list = co_await fetch_revocations(*node, revocations_->run(), revocations_->run_key());
    if (list) {
      const auto verdict = revocations_->update(*list);
      if (verdict == Revocations::Update::accepted)
        log::info("run '{}': revocation list of {} in force ({} peer(s) revoked)",
                  revocations_->run(), list->issued_at, list->peers.size());
      else if (verdict != Revocations::Update::not_newer)
        log::warn("run '{}': revocation list ignored: {}", revocations_->run(), to_string(verdict));
    }
  } catch (const std::exception& e) {
    log::warn("run '{}': revocation list refresh failed ({}); the list in force stays",
              revocations_->run(), e.what());
  }
  sweep();
  if (options_.republish_as) co_await republish();
}

asio::awaitable<void> MembershipGuard::republish() {
  const auto now = std::chrono::steady_clock::now();
  if (last_republish_ != std::chrono::steady_clock::time_point{} &&
      now - last_republish_ < options_.republish_period)
    co_return;
  auto list = revocations_->current();
  auto node = node_.lock();
  if (!list || !node) co_return;
  last_republish_ = now;
  try {
    auto result = co_await publish_revocations(*node, options_.republish_as->public_key(), *list);
    if (!result.ok()) log::debug("republishing the revocation list: {}", result.reason());
  } catch (const std::exception& e) {
    log::debug("republishing the revocation list failed: {}", e.what());
  }
}

asio::awaitable<void> MembershipGuard::run() {
  auto last_refresh = std::chrono::steady_clock::time_point{};
  while (!stopped_) {
    const auto now = std::chrono::steady_clock::now();
    if (last_refresh == std::chrono::steady_clock::time_point{} ||
        now - last_refresh >= options_.refresh_period) {
      last_refresh = now;
      co_await refresh();  // sweeps too
    } else {
      sweep();
    }
    if (stopped_) break;
    timer_.expires_after(std::min(options_.sweep_period, options_.refresh_period));
    asio::error_code ec;
    co_await timer_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
}

}  // namespace apiary::optimizer
