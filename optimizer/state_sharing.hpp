#pragma once
// State sharing for late joiners and stragglers.
//
// A peer with state announces itself as a donor in the DHT under
// "<run>.donors" (its own owner-signed subkey; value [epoch, address]). A
// joiner reads the donors, tries the newest-epoch ones first and downloads
// over one RPC stream "optimizer.state": a header [epoch, optimizer_steps,
// tensor sizes…, BLAKE2b-256 of all tensor bytes] then the tensors in chunks
// of at most 1 MiB. Sizes are checked against the joiner's own model and the
// hash over everything received; a donor that fails, stalls, lies or is older
// than `min_epoch` is skipped and the next one tried.
// Threading: coroutines on the RPC node's executor. Errors: download_state()
// returns nullopt when no donor delivered; nothing is thrown for remote faults.
#include "core/rpc.hpp"
#include "dht/node.hpp"
#include "optimizer/swarm_services.hpp"

#include <asio/awaitable.hpp>

#include <functional>
#include <memory>
#include <optional>
#include <vector>

namespace apiary::optimizer {

inline constexpr std::string_view kStateMethod = "optimizer.state";

class StateServer {
 public:
  // Registers kStateMethod on `rpc`; `snapshot` may be replaced (or emptied) later.
  explicit StateServer(rpc::RpcNode& rpc);
  void set_snapshot(std::function<StateSnapshot()> snapshot);
  bool serving() const;
  // Announces this donor (call periodically while serving).
  asio::awaitable<bool> announce(dht::DhtNode& dht, const PublicKey& own_key,
                                 const std::string& run, std::uint64_t epoch, double ttl_seconds);

 private:
  struct Shared;
  std::shared_ptr<Shared> shared_;
};

// `expected_sizes`: the joiner's tensor sizes (params, optimizer buffers), or
// empty to accept any sizes.
asio::awaitable<std::optional<StateSnapshot>> download_state(
    dht::DhtNode& dht, rpc::RpcNode& rpc, const std::string& run, std::uint64_t min_epoch,
    std::vector<std::size_t> expected_sizes, std::chrono::milliseconds timeout);

}  // namespace apiary::optimizer
