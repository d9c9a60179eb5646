#include "net/admission.hpp"

#include <algorithm>

namespace apiary {

std::string address_prefix(const asio::ip::address& address) {
  if (address.is_v4() || address.to_v6().is_v4_mapped()) {
    auto v4 = address.is_v4() ? address.to_v4()
                              : asio::ip::make_address_v4(asio::ip::v4_mapped, address.to_v6());
    auto bytes = v4.to_bytes();
    bytes[3] = 0;
    return asio::ip::address_v4(bytes).to_string() + "/24";
  }
  auto bytes = address.to_v6().to_bytes();
  std::fill(bytes.begin() + 8, bytes.end(), 0);
  return asio::ip::address_v6(bytes).to_string() + "/64";
}

const std::string* Admission::busiest_prefix() const noexcept {
  const std::string* busiest = nullptr;
  std::size_t most = 0;
  for (const auto& [prefix, tickets] : handshakes_by_prefix_) {
    if (tickets.size() > most) {
      most = tickets.size();
      busiest = &prefix;
    }
  }
  return busiest;
}

Admission::HandshakeVerdict Admission::begin_handshake(const std::string& prefix) {
  HandshakeVerdict verdict;
  if (connections_ + handshakes() >= limits_.max_connections) {
    verdict.refusal = "connection limit of " + std::to_string(limits_.max_connections) + " reached";
    return verdict;
  }
  const std::size_t from_prefix = handshakes_from(prefix);
  if (from_prefix >= limits_.max_handshakes_per_prefix) {
    verdict.refusal = std::to_string(from_prefix) + " handshakes from " + prefix + " in progress";
    return verdict;
  }
  if (handshakes() >= limits_.max_handshakes) {
    const std::string* busiest = busiest_prefix();
    // Taking a slot from the busiest prefix only if that leaves it no smaller
    // than ours: otherwise two prefixes would take turns evicting each other.
    if (busiest == nullptr || handshakes_by_prefix_.at(*busiest).size() <= from_prefix + 1) {
      verdict.refusal = std::to_string(handshakes()) + " handshakes in progress";
      return verdict;
    }
    const Ticket oldest = handshakes_by_prefix_.at(*busiest).front();
    end_handshake(oldest);
    verdict.evicted = oldest;
  }
  verdict.admitted = true;
  verdict.ticket = next_ticket_++;
  handshakes_by_prefix_[prefix].push_back(verdict.ticket);
  handshake_prefix_.emplace(verdict.ticket, prefix);
  return verdict;
}

void Admission::end_handshake(Ticket ticket) noexcept {
  auto it = handshake_prefix_.find(ticket);
  if (it == handshake_prefix_.end()) return;
  auto group = handshakes_by_prefix_.find(it->second);
  if (group != handshakes_by_prefix_.end()) {
    std::erase(group->second, ticket);
    if (group->second.empty()) handshakes_by_prefix_.erase(group);
  }
  handshake_prefix_.erase(it);
}

std::size_t Admission::handshakes_from(const std::string& prefix) const noexcept {
  auto it = handshakes_by_prefix_.find(prefix);
  return it == handshakes_by_prefix_.end() ? 0 : it->second.size();
}

std::size_t Admission::connections_of(const PeerId& peer) const noexcept {
  auto it = connections_by_peer_.find(peer);
  return it == connections_by_peer_.end() ? 0 : it->second;
}

bool Admission::peer_has_room(const PeerId& peer) const noexcept {
  return connections_of(peer) < limits_.max_connections_per_peer;
}

std::size_t Admission::inbound_connections_from(const std::string& prefix) const noexcept {
  auto it = inbound_by_prefix_.find(prefix);
  return it == inbound_by_prefix_.end() ? 0 : it->second;
}

bool Admission::add_connection(const Connection& connection, std::string* refusal) {
  auto refuse = [refusal](std::string why) {
    if (refusal) *refusal = std::move(why);
    return false;
  };
  if (connection.inbound) {
    // The handshake that produced this connection still holds its slot here.
    if (connections_ >= limits_.max_connections)
      return refuse("connection limit of " + std::to_string(connections_) + " reached");
    if (!peer_has_room(connection.peer))
      return refuse(std::to_string(connections_of(connection.peer)) +
                    " connections from this peer already");
    const std::size_t from_prefix = inbound_connections_from(connection.prefix);
    if (from_prefix >= limits_.max_connections_per_prefix)
      return refuse(std::to_string(from_prefix) + " connections from " + connection.prefix +
                    " already");
    ++inbound_by_prefix_[connection.prefix];
  }
  ++connections_;
  ++connections_by_peer_[connection.peer];
  return true;
}

void Admission::remove_connection(const Connection& connection) noexcept {
  auto it = connections_by_peer_.find(connection.peer);
  if (it == connections_by_peer_.end()) return;
  --connections_;
  if (--it->second == 0) connections_by_peer_.erase(it);
  if (!connection.inbound) return;
  auto by_prefix = inbound_by_prefix_.find(connection.prefix);
  if (by_prefix != inbound_by_prefix_.end() && --by_prefix->second == 0)
    inbound_by_prefix_.erase(by_prefix);
}

}  // namespace apiary
