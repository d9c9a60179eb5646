#pragma once
// Peers that failed to answer are skipped for a while: base_time after the
// first failure, multiplied by backoff_rate for each further consecutive
// failure (capped). A success clears the entry. Errors: none thrown.
#include "core/identity.hpp"

#include <chrono>
#include <unordered_map>

namespace apiary::dht {

class Blacklist {
 public:
  using Clock = std::chrono::steady_clock;
  Blacklist(std::chrono::milliseconds base_time = std::chrono::milliseconds{5000},
            double backoff_rate = 2.0,
            std::chrono::milliseconds max_time = std::chrono::milliseconds{300000})
      : base_time_(base_time), backoff_rate_(backoff_rate), max_time_(max_time) {}

  void register_failure(const PeerId& peer, Clock::time_point now);
  void register_success(const PeerId& peer) { entries_.erase(peer); }
  bool is_banned(const PeerId& peer, Clock::time_point now) const;
  // How long `peer` is banned from now (zero when not banned).
  std::chrono::milliseconds remaining(const PeerId& peer, Clock::time_point now) const;
  std::size_t size() const noexcept { return entries_.size(); }

 private:
  struct Entry {
    int failures = 0;
    Clock::time_point until{};
  };
  std::chrono::milliseconds base_time_;
  double backoff_rate_;
  std::chrono::milliseconds max_time_;
  std::unordered_map<PeerId, Entry> entries_;
};

}  // namespace apiary::dht
