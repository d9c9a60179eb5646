#pragma once
// Where matchmaking declares "I want to average in group K until time T" and
// lists who else did: a small interface so matchmaking is testable without a
// DHT (InMemoryGroupKeyStore) and runs over the DHT in production
// (DhtGroupKeyStore).
//
// DhtGroupKeyStore: DHT key "averaging:<K>", one owner-signed subkey per peer,
// "[owner:<its Ed25519 public key>]" (dht/validator.hpp), value = its printable
// address, DHT expiration = T. The node's OwnerSignatureValidator signs
// (key, subkey, address, T) with the peer's identity, and every node that
// stores or returns the entry checks that signature, so only the key's holder
// can write its subkey. list() keeps an entry only when the address it
// declares names the peer id of the subkey's key. A forger therefore cannot
// declare another peer, nor re-declare, move or extend another peer's entry,
// and so cannot make another peer lead a round or stop leading it (the
// earliest expiration leads). What it still can: declare itself with any
// expiration (leading with a peer id it holds), replay another peer's own
// signed entry unchanged (a stored newer expiration wins), or, as a replica,
// withhold entries. declare() refuses (false) a declaration whose address is
// not the node's own signing identity. The node must be created with
// OwnerSignatureValidator(identity) for the identity of the declared address.
//
// Times are seconds since the Unix epoch (the DHT's clock). Errors: list()
// returns what it could find and skips (logs at debug) entries that fail the
// checks; declare() returns false when nothing stored it.
#include "net/address.hpp"

#include <asio/awaitable.hpp>

#include <map>
#include <memory>
#include <string>
#include <vector>

namespace apiary::dht {
class DhtNode;
}

namespace apiary::averaging {

struct Declaration {
  PeerAddress address;
  double expiration = 0;  // the declaration's end; earlier = declared earlier
};

class GroupKeyStore {
 public:
  virtual ~GroupKeyStore() = default;
  virtual asio::awaitable<bool> declare(std::string group_key, Declaration declaration) = 0;
  // Unexpired declarations under `group_key` at time `now`.
  virtual asio::awaitable<std::vector<Declaration>> list(std::string group_key, double now) = 0;
};

// Shared by every peer of a test (single thread).
class InMemoryGroupKeyStore final : public GroupKeyStore {
 public:
  asio::awaitable<bool> declare(std::string group_key, Declaration declaration) override;
  asio::awaitable<std::vector<Declaration>> list(std::string group_key, double now) override;

 private:
  std::map<std::string, std::map<std::string, Declaration>> keys_;  // key → peer → declaration
};

class DhtGroupKeyStore final : public GroupKeyStore {
 public:
  explicit DhtGroupKeyStore(std::shared_ptr<dht::DhtNode> node) : node_(std::move(node)) {}
  asio::awaitable<bool> declare(std::string group_key, Declaration declaration) override;
  asio::awaitable<std::vector<Declaration>> list(std::string group_key, double now) override;

 private:
  std::shared_ptr<dht::DhtNode> node_;
};

}  // namespace apiary::averaging
