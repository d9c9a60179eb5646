#include "averaging/group_key_store.hpp"

#include "core/error.hpp"
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
  // Subkey: the peer id (one entry per peer); value: its printable address.
  // Named locals, not temporaries, in co_await expressions (GCC 12 bug).
  Bytes key = to_bytes("averaging:" + group_key);
  Bytes subkey = to_bytes(declaration.address.peer.to_string());
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
    try {
      Declaration d{PeerAddress::parse(as_string_view(entry.value)), entry.expiration};
      // Anyone can write unsigned subkeys: keep only self-consistent entries.
      if (d.address.peer.to_string() == as_string_view(subkey)) found.push_back(std::move(d));
    } catch (const Error&) {
      // A malformed declaration is ignored, not fatal.
    }
  }
  co_return found;
}

}  // namespace apiary::averaging
