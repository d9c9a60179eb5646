#pragma once
// Process-wide counters of the TCP transport (metrics::Registry::global()),
// looked up once. Errors: none (noexcept after first use).
#include "core/metrics.hpp"

namespace apiary::tcp_metrics {

struct Counters {
  metrics::Counter& handshakes_ok;
  metrics::Counter& handshakes_failed;
  metrics::Counter& frames_rejected;  // oversize, malformed, unauthentic or stalled
  metrics::Counter& refused;          // inbound connections refused or aborted by the limits
  metrics::Counter& bytes_sent;       // wire bytes, frame overhead included
  metrics::Counter& bytes_received;
};

inline Counters& counters() {
  auto& r = metrics::Registry::global();
  static Counters c{
      r.counter("apiary_tcp_handshakes_total", "TCP secure-channel handshakes completed"),
      r.counter("apiary_tcp_handshake_failures_total",
                "TCP handshakes that failed (refused, timed out, malformed, unreachable)"),
      r.counter("apiary_tcp_frames_rejected_total",
                "frames dropped for size, authentication or a missed body deadline; each "
                "closes its connection"),
      r.counter("apiary_tcp_refused_total",
                "inbound connections refused or aborted by the connection and handshake limits"),
      r.counter("apiary_tcp_sent_bytes_total", "bytes written to TCP sockets after the handshake"),
      r.counter("apiary_tcp_received_bytes_total",
                "bytes read from TCP sockets after the handshake"),
  };
  return c;
}

}  // namespace apiary::tcp_metrics
