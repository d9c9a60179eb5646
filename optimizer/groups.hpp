#pragma once
// Matchmaking for the collaborative optimizer's rounds, through the DHT.
//
// Every peer that reaches the end of epoch N declares itself under the round's
// key ("<run>.grad.N"): its own owner-signed subkey, value [address, weight,
// bandwidth, declared_at]. The earliest declaration (ties: lowest peer id)
// leads. The leader waits until `expected` peers (the live peers the progress
// tracker sees) have declared, or the matchmaking time has passed since its
// own declaration, then publishes the member list under "<key>.group". The
// others poll for it. Should two peers both believe they lead (the DHT is
// eventually consistent), everyone takes the list published by the earliest
// leader that names them, so every member of a group agrees on it.
// A round that finds no list naming this peer within twice the matchmaking
// time (plus a second) has no group, so an out-of-step peer loses little.
// Threading: on the DHT node's executor. Errors: none thrown for remote faults.
#include "averaging/group_source.hpp"
#include "core/identity.hpp"
#include "dht/node.hpp"

#include <chrono>
#include <functional>
#include <memory>
#include <string>

namespace apiary::optimizer {

struct RoundMatchmakingOptions {
  std::chrono::milliseconds matchmaking_time{2000};  // leader's longest wait for more peers
  std::chrono::milliseconds poll_interval{100};
  std::size_t min_group_size = 2;
  std::size_t max_group_size = 64;
  std::size_t expected = 0;  // live peers expected to join (0: wait the full time)
  bool client_mode = false;  // declares bandwidth 0: owns no part of the all-reduce
};

class RoundMatchmaking final : public averaging::GroupSource {
 public:
  RoundMatchmaking(dht::DhtNode& node, PublicKey own_key, std::string round_key,
                   RoundMatchmakingOptions options);
  asio::awaitable<std::optional<averaging::GroupInfo>> find_group(
      float weight, std::uint64_t schema_hash,
      std::chrono::steady_clock::time_point deadline) override;

 private:
  dht::DhtNode& node_;
  PublicKey own_key_;
  std::string key_;
  RoundMatchmakingOptions options_;
};

using GroupSourceFactory = std::function<std::unique_ptr<averaging::GroupSource>(
    dht::DhtNode&, const std::string& group_key, std::size_t expected_peers)>;

// The factory NetworkSwarm uses, with the run's group sizes and matchmaking time.
struct RunConfig;
GroupSourceFactory matchmaking_groups(const RunConfig& config, const Identity& identity,
                                      bool client_mode);

}  // namespace apiary::optimizer
