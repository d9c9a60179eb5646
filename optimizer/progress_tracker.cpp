#include "optimizer/progress_tracker.hpp"

#include "core/codec.hpp"
#include "core/log.hpp"
#include "dht/validator.hpp"

namespace apiary::optimizer {

ProgressTracker::ProgressTracker(std::shared_ptr<dht::DhtNode> dht, PublicKey own_key,
                                 std::string run, std::uint64_t target_batch_size,
                                 ProgressOptions options, double report_ttl, Clock clock)
    : dht_(std::move(dht)),
      own_key_(own_key),
      run_(std::move(run)),
      target_(target_batch_size),
      options_(options),
      report_ttl_(report_ttl),
      clock_(std::move(clock)) {}

Bytes ProgressTracker::key() const {
  const std::string k = run_ + ".progress";
  return Bytes(k.begin(), k.end());
}

Bytes ProgressTracker::encode(const PeerProgress& p) {
  codec::Writer w;
  w.array(12)
      .uint(p.epoch)
      .uint(p.samples_accumulated)
      .f64(p.samples_per_second)
      .f64(p.report_time)
      .boolean(p.client_mode)
      .f64(p.loss)
      .f64(p.test_accuracy)
      .uint(p.rounds_averaged)
      .uint(p.rounds_failed)
      .uint(p.bytes_sent)
      .uint(p.bytes_received)
      .f64(p.round_seconds);
  return w.take();
}

std::optional<PeerProgress> ProgressTracker::decode(ByteSpan value) {
  try {
    auto doc = codec::parse(value);
    auto a = doc.root().array("progress", 5, 12);
    PeerProgress p;
    p.epoch = a.next().uint("progress.epoch");
    p.samples_accumulated = a.next().uint("progress.samples");
    p.samples_per_second = a.next().f64("progress.samples_per_second");
    p.report_time = a.next().f64("progress.time");
    p.client_mode = a.next().boolean("progress.client_mode");
    if (!a.done()) p.loss = a.next().f64("progress.loss");
    if (!a.done()) p.test_accuracy = a.next().f64("progress.test_accuracy");
    if (!a.done()) p.rounds_averaged = a.next().uint("progress.rounds_averaged");
    if (!a.done()) p.rounds_failed = a.next().uint("progress.rounds_failed");
    if (!a.done()) p.bytes_sent = a.next().uint("progress.bytes_sent");
    if (!a.done()) p.bytes_received = a.next().uint("progress.bytes_received");
    if (!a.done()) p.round_seconds = a.next().f64("progress.round_seconds");
    if (p.samples_per_second < 0 || p.samples_per_second > 1e12) return std::nullopt;
    return p;
  } catch (const Error&) {
    return std::nullopt;
  }
}

std::optional<PeerId> ProgressTracker::owner_of(ByteSpan subkey) {
  const auto key = dht::OwnerSignatureValidator::parse_owner_marker(subkey);
  if (!key) return std::nullopt;
  return key->peer_id();
}

asio::awaitable<bool> ProgressTracker::publish(PeerProgress local) {
  const std::string marker = dht::OwnerSignatureValidator::owner_marker(own_key_);
  auto result = co_await dht_->store(key(), Bytes(marker.begin(), marker.end()), encode(local),
                                     local.report_time + report_ttl_);
  if (!result.ok()) log::debug("progress report not stored: {}", result.reason());
  co_return result.ok();
}

asio::awaitable<GlobalProgress> ProgressTracker::refresh(std::uint64_t local_epoch) {
  auto found = co_await dht_->get(key(), /*latest=*/true);
  const double now = clock_.wall_now();
  reports_.clear();
  if (found && found->is_dictionary) {
    for (const auto& [subkey, entry] : found->subkeys) {
      if (entry.expiration <= now) continue;
      auto peer = owner_of(subkey);
      auto progress = decode(entry.value);
      if (!peer || !progress) {
        log::debug("skipping a malformed progress report");
        continue;
      }
      progress->peer = peer->to_string();
      reports_.push_back(std::move(*progress));
    }
  }
  estimate_ = estimate_progress(reports_, local_epoch, target_, now, options_);
  co_return *estimate_;
}

}  // namespace apiary::optimizer
