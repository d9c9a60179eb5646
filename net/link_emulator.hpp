#pragma once
// Link emulator: wraps a Transport and shapes every connection it makes or
// accepts — one-way latency with jitter, a bandwidth cap (token bucket per
// direction), random message loss handled as a disconnect, and random
// disconnects. This kernel has no netem, so every latency/bandwidth test and
// benchmark goes through here. Deterministic for a given seed.
//
// Model: the profile is this peer's access link. Outgoing and incoming messages
// each cross it (one token bucket per direction, then latency + jitter), so a
// call from an emulated peer to a plain one takes 2 × latency; between two
// emulated peers latencies add up and the slower bandwidth wins. send()
// completes once the message has left the link (backpressure).
#include "net/transport.hpp"

#include <chrono>
#include <cstdint>

namespace apiary {

struct LinkProfile {
  std::chrono::microseconds latency{0};  // one-way, added to every message
  std::chrono::microseconds jitter{0};   // uniform in [0, jitter], order preserved
  double bandwidth_bytes_per_s = 0;      // per direction; 0 = unlimited
  double disconnect_per_s = 0;           // rate of random connection drops (Poisson)
  std::uint64_t seed = 1;
};

TransportPtr make_link_emulator(TransportPtr inner, LinkProfile profile);

}  // namespace apiary
