#include "dht/blacklist.hpp"

#include <algorithm>
#include <cmath>

namespace apiary::dht {

void Blacklist::register_failure(const PeerId& peer, Clock::time_point now) {
  Entry& entry = entries_[peer];
  // A failure reported while still banned (a request sent before the ban) does not escalate.
  if (entry.failures > 0 && now < entry.until) return;
  entry.failures += 1;
  const double factor = std::pow(backoff_rate_, entry.failures - 1);
  const double ms = std::min(static_cast<double>(max_time_.count()),
                             static_cast<double>(base_time_.count()) * factor);
  entry.until = now + std::chrono::milliseconds{static_cast<std::int64_t>(ms)};
}

bool Blacklist::is_banned(const PeerId& peer, Clock::time_point now) const {
  auto it = entries_.find(peer);
  return it != entries_.end() && now < it->second.until;
}

std::chrono::milliseconds Blacklist::remaining(const PeerId& peer, Clock::time_point now) const {
  auto it = entries_.find(peer);
  if (it == entries_.end() || now >= it->second.until) return std::chrono::milliseconds{0};
  return std::chrono::duration_cast<std::chrono::milliseconds>(it->second.until - now);
}

}  // namespace apiary::dht
