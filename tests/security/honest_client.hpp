#pragma once
// The honest side of the DHT attack tests: a client-mode DHT peer with its own
// identity, and the latency figures (gets, pings, p99) the tests assert on.
#include "dht/runner.hpp"
#include "dht/validator.hpp"

#include <algorithm>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

namespace apiary::test {

inline Bytes bytes_of(const std::string& text) {
  return Bytes(text.begin(), text.end());
}

inline double percentile(std::vector<double> samples, double q) {
  std::sort(samples.begin(), samples.end());
  return samples.at(static_cast<std::size_t>(q * static_cast<double>(samples.size() - 1)));
}

// A client-mode DHT peer with its own identity, bootstrapped from `to`.
inline std::unique_ptr<dht::DhtRunner> client_of(const PeerAddress& to, const Identity& identity) {
  dht::DhtOptions options;
  options.client_mode = true;
  options.validator = std::make_shared<dht::OwnerSignatureValidator>(identity);
  return std::make_unique<dht::DhtRunner>(
      dht::DhtRunner::tcp(identity, TcpEndpoint{}, /*client_mode=*/true),
      std::vector<PeerAddress>{to}, options);
}

// Milliseconds of `count` gets of `key` and of `count` DHT pings of `to`, one
// at a time; a get that does not find `expected` throws. Each get asks the
// network (latest: the client's own cache of the first answer does not count).
struct HonestLatencies {
  std::vector<double> get_ms, ping_ms;
};

inline HonestLatencies honest_gets_and_pings(dht::DhtRunner& client, const PeerAddress& to,
                                             const Bytes& key, const Bytes& expected,
                                             int count = 100) {
  using Clock = std::chrono::steady_clock;
  const auto ms_since = [](Clock::time_point start) {
    return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
  };
  HonestLatencies out;
  for (int i = 0; i < count; ++i) {
    const auto start = Clock::now();
    const auto found = client.get(key, /*latest=*/true).get();
    out.get_ms.push_back(ms_since(start));
    if (!found || found->regular.value != expected)
      throw std::runtime_error("honest get did not find the honest value");
    const auto ping_start = Clock::now();
    if (!client.run([to](dht::DhtNode& n) { return n.ping(to); }).get())
      throw std::runtime_error("honest DHT ping failed");
    out.ping_ms.push_back(ms_since(ping_start));
  }
  return out;
}

}  // namespace apiary::test
