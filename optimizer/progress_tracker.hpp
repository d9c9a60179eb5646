#pragma once
// ProgressTracker: publishes this peer's training progress in the DHT and
// reads everyone else's.
//
// Key "<run>.progress"; each peer writes its own subkey "[owner:<public key>]",
// which the DHT's OwnerSignatureValidator makes writable only by that peer
// (the node must be created with OwnerSignatureValidator(identity)). Values are
// msgpack [epoch, samples_accumulated, samples_per_second, report_time,
// client_mode, loss, test_accuracy, rounds_averaged, rounds_failed, bytes_sent,
// bytes_received, round_seconds] (the last seven optional: older peers send fewer); the reporting peer's id comes from the signed subkey, never
// from the value. Reports expire after `report_ttl` seconds, so departed peers
// drop out of the estimate on their own.
//
// Threading: coroutines run on the DHT node's executor. Errors: publish()
// reports failure through its return value (the DHT was unreachable); a
// malformed report from another peer is skipped and logged, never thrown.
#include "core/bytes.hpp"
#include "core/clock.hpp"
#include "core/identity.hpp"
#include "dht/node.hpp"
#include "optimizer/progress_estimate.hpp"

#include <asio/awaitable.hpp>

#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace apiary::optimizer {

class ProgressTracker {
 public:
  ProgressTracker(std::shared_ptr<dht::DhtNode> dht, PublicKey own_key, std::string run,
                  std::uint64_t target_batch_size, ProgressOptions options = {},
                  double report_ttl = 60.0, Clock clock = {});

  // Stores `local` (its `peer` field is ignored). True when a replica accepted it.
  asio::awaitable<bool> publish(PeerProgress local);
  // Fetches every live report (crawling for the latest) and estimates the swarm's progress.
  asio::awaitable<GlobalProgress> refresh(std::uint64_t local_epoch);

  const std::vector<PeerProgress>& last_reports() const noexcept { return reports_; }
  const std::optional<GlobalProgress>& last_estimate() const noexcept { return estimate_; }
  Bytes key() const;

  static Bytes encode(const PeerProgress& progress);
  // nullopt when malformed; `peer` is filled from the subkey by the caller.
  static std::optional<PeerProgress> decode(ByteSpan value);
  // The peer id named by an "[owner:<64 hex>]" subkey, if it is one.
  static std::optional<PeerId> owner_of(ByteSpan subkey);

 private:
  std::shared_ptr<dht::DhtNode> dht_;
  PublicKey own_key_;
  std::string run_;
  std::uint64_t target_;
  ProgressOptions options_;
  double report_ttl_;
  Clock clock_;  // wall: report times and expirations
  std::vector<PeerProgress> reports_;
  std::optional<GlobalProgress> estimate_;
};

}  // namespace apiary::optimizer
