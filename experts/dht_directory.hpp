#pragma once
// Experts in the DHT. A server declares each expert it hosts once per prefix
// level of its uid: under the key "apiary.experts/<prefix>" (e.g. ".../ffn.3.")
// the subkey "<next coord>[owner:<server key>]" ("7[owner:…]") maps to
// [uid, server address] — an owner-signed entry, so only the server can
// declare itself, and entries naming another server are skipped — the
// dictionary that BeamSearcher walks — with an expiration a little beyond the
// next re-declaration, so experts of a dead server vanish on their own.
//
// declare_experts()/get_children() are coroutines for the DHT node's network
// thread. DhtExpertDirectory is the blocking ExpertDirectory for clients'
// compute threads; ExpertDeclarer re-declares a server's experts periodically.
// Values found in the DHT are untrusted: malformed subkeys, uids and addresses
// are skipped, never thrown.
// Errors: throws apiary::Error (invalid_argument for bad uids to declare, or a
// node that does not sign as the declared server).
#include "dht/node.hpp"
#include "experts/directory.hpp"

#include <asio/awaitable.hpp>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

namespace apiary::experts {

inline constexpr std::string_view kDhtKeyPrefix = "apiary.experts/";

Bytes prefix_key(std::string_view prefix);

// Stores the records for `uids` (all prefix levels); returns how many records were stored.
asio::awaitable<std::size_t> declare_experts(dht::DhtNode& node, std::vector<std::string> uids,
                                             PeerAddress server, dht::DhtTime expiration);
asio::awaitable<std::vector<PrefixChildren>> get_children(dht::DhtNode& node,
                                                          std::vector<std::string> prefixes);
// Decodes one prefix's dictionary (untrusted); exposed for tests.
PrefixChildren parse_children(std::string_view prefix, const dht::StoredValue& value);

class DhtExpertDirectory final : public ExpertDirectory {
 public:
  explicit DhtExpertDirectory(std::shared_ptr<dht::DhtNode> node,
                              std::chrono::milliseconds timeout = std::chrono::seconds(10))
      : node_(std::move(node)), timeout_(timeout) {}
  // Blocking; never call from the node's network thread. A lookup that fails or
  // times out yields empty children.
  std::vector<PrefixChildren> get_children(std::span<const std::string> prefixes) override;

 private:
  std::shared_ptr<dht::DhtNode> node_;
  std::chrono::milliseconds timeout_;
};

// Declares `uids` now and then every `period`, each time with expiration
// now + `ttl`; stop() (or destruction) ends the loop.
class ExpertDeclarer {
 public:
  ExpertDeclarer(std::shared_ptr<dht::DhtNode> node, std::vector<std::string> uids,
                 PeerAddress server, std::chrono::seconds period = std::chrono::seconds(30),
                 std::chrono::seconds ttl = std::chrono::seconds(75));
  ~ExpertDeclarer();
  void start();
  // Safe from any thread.
  void stop();
  // Successful declaration rounds so far.
  std::uint64_t rounds() const noexcept { return state_->rounds.load(); }

 private:
  struct State {
    std::atomic<bool> stopped{false};
    std::atomic<std::uint64_t> rounds{0};
    std::shared_ptr<asio::steady_timer> timer;
  };
  std::shared_ptr<dht::DhtNode> node_;
  std::vector<std::string> uids_;
  PeerAddress server_;
  std::chrono::seconds period_, ttl_;
  std::shared_ptr<State> state_ = std::make_shared<State>();
};

}  // namespace apiary::experts
