#pragma once
// Where matchmaking declares "I want to average in group K until time T" and
// lists who else did: a small interface so matchmaking is testable without a
// DHT (InMemoryGroupKeyStore) and runs over the DHT in production
// (DhtGroupKeyStore: key = group key, one subkey per peer, DHT expiration).
//
// Times are seconds since the Unix epoch (the DHT's clock). Errors: list()
// returns what it could find; declare() returns false when nothing stored it.
#include "core/address.hpp"

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
