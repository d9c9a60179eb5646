#include "optimizer/run_directory.hpp"

#include "core/error.hpp"
#include "core/log.hpp"
#include "dht/validator.hpp"
#include "optimizer/progress_tracker.hpp"

#include <chrono>
#include <thread>

namespace apiary::optimizer {

Bytes run_config_key(const std::string& run) {
  const std::string key = run + ".config";
  return Bytes(key.begin(), key.end());
}

asio::awaitable<dht::StoreResult> publish_run_config(dht::DhtNode& dht, const PublicKey& run_key,
                                                     const RunConfig& config, double ttl_seconds) {
  const std::string marker = dht::OwnerSignatureValidator::owner_marker(run_key);
  const std::string json = config.to_json();
  co_return co_await dht.store(run_config_key(config.run), Bytes(marker.begin(), marker.end()),
                               Bytes(json.begin(), json.end()),
                               dht::system_dht_time() + ttl_seconds);
}

asio::awaitable<FetchedRunConfig> fetch_run_config(dht::DhtNode& dht, const std::string& run,
                                                   const std::vector<PeerId>& trusted_owners) {
  auto found = co_await dht.get(run_config_key(run), /*latest=*/true);
  if (!found || !found->is_dictionary || found->subkeys.empty()) {
    throw Error(Errc::not_found,
                "no configuration for run '" + run + "' in the DHT (is the coordinator up?)");
  }
  for (const auto& owner : trusted_owners) {
    for (const auto& [subkey, entry] : found->subkeys) {
      auto peer = ProgressTracker::owner_of(subkey);
      if (!peer || *peer != owner) continue;
      FetchedRunConfig out;
      auto text = as_string_view(entry.value);
      try {
        out.config = RunConfig::parse_json(std::string(text));
      } catch (const Error& e) {
        throw Error(Errc::bad_message,
                    std::string("the run's published configuration is invalid: ") + e.what());
      }
      if (out.config.run != run)
        throw Error(Errc::bad_message, "the published configuration names another run");
      auto key_hex = from_hex(as_string_view(subkey).substr(7, 64));
      std::copy(key_hex->begin(), key_hex->end(), out.run_key.bytes.begin());
      co_return out;
    }
  }
  throw Error(Errc::not_found,
              "run '" + run + "' has " + std::to_string(found->subkeys.size()) +
                  " configuration(s) in the DHT, but none signed by a trusted run key "
                  "(pass the coordinator's address in --peers or --run-key)");
}

FetchedRunConfig fetch_run_config_retrying(dht::DhtRunner& dht, const std::string& run,
                                           const std::vector<PeerId>& trusted_owners,
                                           int attempts) {
  for (int attempt = 1;; ++attempt) {
    try {
      return dht
          .run([&](dht::DhtNode& node) { return fetch_run_config(node, run, trusted_owners); })
          .get();
    } catch (const Error& e) {
      if (e.code() != Errc::not_found || attempt >= attempts) throw;
      log::info("run configuration not found yet ({}); retrying ({}/{})", e.what(), attempt,
                attempts);
      std::this_thread::sleep_for(std::chrono::milliseconds(500 * attempt));
    }
  }
}

}  // namespace apiary::optimizer
