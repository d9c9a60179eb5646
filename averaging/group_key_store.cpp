#include "averaging/group_key_store.hpp"

#include "core/error.hpp"
#include "core/log.hpp"
#include "dht/node.hpp"

namespace apiary::averaging {

asio::awaitable<bool> InMemoryGroupKeyStore::declare(std::string group_key,
                                                     Declaration declaration) {
  auto& entry = keys_[group_key][declaration.address.peer.to_string()];
  if (declaration.expiration >= entry.expiration) entry = declaration;  // newest wins
  co_return true;
}

asio::awaitable<std::vector<Declaration>> InMemoryGroupKeyStore::list(std::string group_key,
                                                                      double now) {
  std::vector<Declaration> found;
  if (auto it = keys_.find(group_key); it != keys_.end())
    for (const auto& [peer, declaration] : it->second)
      if (declaration.expiration > now) found.push_back(declaration);
  co_return found;
}

namespace {
Bytes to_bytes(std::string_view text) {
  const auto span = as_bytes(text);
  return Bytes(span.begin(), span.end());
}
}  // namespace

asio::awaitable<bool> DhtGroupKeyStore::declare(std::string group_key, Declaration declaration) {
  // Only the node's own identity can sign the subkey; refuse anyone else's address.
  const std::optional<PublicKey> own_key = node_->signing_key();
  if (!own_key || own_key->peer_id() != declaration.address.peer) {
    log::warn("averaging: not declaring {} under {}: the DHT node does not sign as that peer",
              declaration.address.to_string(), group_key);
    co_return false;
  }
  // Named locals, not temporaries, in co_await expressions (GCC 12 bug).
  Bytes key = to_bytes("averaging:" + group_key);
  Bytes subkey = to_bytes(dht::OwnerSignatureValidator::owner_marker(*own_key));
  Bytes value = to_bytes(declaration.address.to_string());
  auto result = co_await node_->store(std::move(key), std::move(subkey), std::move(value),
                                      declaration.expiration);
  co_return result.ok();
}

asio::awaitable<std::vector<Declaration>> DhtGroupKeyStore::list(std::string group_key,
                                                                 double now) {
  std::vector<Declaration> found;
  Bytes key = to_bytes("averaging:" + group_key);
  auto value = co_await node_->get(std::move(key), /*latest=*/true);
  if (!value || !value->is_dictionary) co_return found;
  for (const auto& [subkey, entry] : value->subkeys) {
    if (entry.expiration <= now) continue;
    // The DHT checked the owner's signature; the owner may declare only itself.
    const auto owner = dht::OwnerSignatureValidator::parse_owner_marker(subkey);
    if (!owner) {
      log::debug("averaging: skipping an unsigned declaration under {}", group_key);
      continue;
    }
    try {
      Declaration d{PeerAddress::parse(as_string_view(entry.value)), entry.expiration};
      if (d.address.peer == owner->peer_id()) {
        found.push_back(std::move(d));
      } else {
        log::debug("averaging: skipping {}'s declaration of another peer, {}, under {}",
                   owner->peer_id().to_string(), d.address.to_string(), group_key);
      }
    } catch (const Error&) {
      log::debug("averaging: skipping a malformed declaration under {}", group_key);
    }
  }
  co_return found;
}

}  // namespace apiary::averaging
