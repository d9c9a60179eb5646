#pragma once
// Who may connect, as a pure policy (no sockets, no clocks) so that every limit
// has a unit test; the TCP transport (net/tcp_transport.cpp) asks it before the
// handshake, after the peer's hello (before the key exchange) and once the
// peer is authenticated.
//
// - Inbound handshakes in progress are counted per address prefix (/24 for
//   IPv4, /64 for IPv6: one host, or one attacker, usually holds at least that
//   much), not per exact address.
// - When every handshake slot is taken, a newcomer from a prefix with fewer
//   handshakes in progress than the busiest prefix takes over that prefix's
//   oldest slot (the transport aborts it): one source that floods handshakes
//   from many addresses cannot lock the other prefixes out.
// - Authenticated connections are counted in total, per peer identity and
//   (inbound ones) per prefix. Inbound connections are refused beyond the
//   limits; outbound ones (this peer's own choice) are only counted.
// Errors: none; refusals are return values with a reason for the log.
#include "core/identity.hpp"

#include <asio/ip/address.hpp>

#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <unordered_map>

namespace apiary {

struct ConnectionLimits {
  // Authenticated connections plus inbound handshakes; inbound ones are refused
  // beyond this (the transport also keeps it under the process's file limit).
  std::size_t max_connections = 1000;
  std::size_t max_connections_per_peer = 8;      // inbound refused beyond, per identity
  std::size_t max_connections_per_prefix = 256;  // inbound, per /24 or /64
  std::size_t max_handshakes = 256;              // inbound handshakes in progress
  std::size_t max_handshakes_per_prefix = 32;
};

// "1.2.3.0/24" or "2001:db8:1:2::/64"; IPv4-mapped IPv6 addresses count as IPv4.
std::string address_prefix(const asio::ip::address& address);

class Admission {
 public:
  using Ticket = std::uint64_t;

  // One authenticated connection as the policy counts it.
  struct Connection {
    PeerId peer;
    std::string prefix;  // the remote's address_prefix()
    bool inbound = true;
  };

  struct HandshakeVerdict {
    bool admitted = false;
    Ticket ticket = 0;              // valid when admitted
    std::optional<Ticket> evicted;  // a handshake the caller must abort now
    std::string refusal;            // why not admitted
  };

  explicit Admission(ConnectionLimits limits) : limits_(limits) {}

  // A socket from `prefix` was accepted: may its handshake start?
  HandshakeVerdict begin_handshake(const std::string& prefix);
  // The handshake ended (done, failed or aborted); unknown tickets are ignored,
  // so a handshake that was evicted may end twice.
  void end_handshake(Ticket ticket) noexcept;

  // Before the key exchange: may the identity the peer claims in its hello
  // hold one more inbound connection? (A false claim only refuses the liar.)
  bool peer_has_room(const PeerId& peer) const noexcept;
  // Counts an authenticated connection; for an inbound one, false (nothing
  // counted) when the total, the peer's or the prefix's limit is reached.
  bool add_connection(const Connection& connection, std::string* refusal = nullptr);
  // Uncounts a connection that add_connection() counted.
  void remove_connection(const Connection& connection) noexcept;

  std::size_t handshakes() const noexcept { return handshake_prefix_.size(); }
  std::size_t handshakes_from(const std::string& prefix) const noexcept;
  std::size_t connections() const noexcept { return connections_; }
  std::size_t connections_of(const PeerId& peer) const noexcept;
  std::size_t inbound_connections_from(const std::string& prefix) const noexcept;
  const ConnectionLimits& limits() const noexcept { return limits_; }

 private:
  // The prefix with the most handshakes in progress (empty when none).
  const std::string* busiest_prefix() const noexcept;

  ConnectionLimits limits_;
  Ticket next_ticket_ = 1;
  std::unordered_map<std::string, std::deque<Ticket>> handshakes_by_prefix_;  // oldest first
  std::unordered_map<Ticket, std::string> handshake_prefix_;
  std::unordered_map<PeerId, std::size_t> connections_by_peer_;
  std::unordered_map<std::string, std::size_t> inbound_by_prefix_;
  std::size_t connections_ = 0;
};

}  // namespace apiary
