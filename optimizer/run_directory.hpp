#pragma once
// Where a run's configuration lives in the DHT, and how it is trusted.
//
// The coordinator stores the canonical JSON of the RunConfig under key
// "<run>.config", subkey "[owner:<run key>]", so the DHT's owner-signature
// validator makes it writable only by the holder of the run key. A joiner
// accepts the entry whose owner is the run key it trusts: given explicitly
// (--run-key), or else the coordinator it dialled (the peer id in the address
// it was given on the command line is the hash of the run key).
// Errors: fetch throws apiary::Error{not_found} when no trusted configuration
// is found and {bad_message} when the trusted one does not parse.
#include "core/identity.hpp"
#include "dht/node.hpp"
#include "dht/runner.hpp"
#include "optimizer/run_config.hpp"

#include <asio/awaitable.hpp>

#include <optional>
#include <vector>

namespace apiary::optimizer {

Bytes run_config_key(const std::string& run);

// Stores (or refreshes) the configuration for `ttl_seconds`.
asio::awaitable<dht::StoreResult> publish_run_config(dht::DhtNode& dht, const PublicKey& run_key,
                                                     const RunConfig& config, double ttl_seconds);

struct FetchedRunConfig {
  RunConfig config;
  PublicKey run_key;
};

// `trusted_owners`: peer ids whose configuration is accepted (the run key's
// hash); the first match in that order wins.
asio::awaitable<FetchedRunConfig> fetch_run_config(dht::DhtNode& dht, const std::string& run,
                                                   const std::vector<PeerId>& trusted_owners);

// The same from a running node, blocking, retrying not_found up to `attempts`
// times (500 ms, 1 s, …): a swarm that just started or lost its coordinator
// may need a few lookups before the replicas answer.
FetchedRunConfig fetch_run_config_retrying(dht::DhtRunner& dht, const std::string& run,
                                           const std::vector<PeerId>& trusted_owners, int attempts);

}  // namespace apiary::optimizer
