#include "net/address_wire.hpp"

#include <algorithm>

namespace apiary {

void write_peer_address(codec::Writer& w, const PeerAddress& address) {
  w.array(3).bin(address.peer.bytes).str(address.host).uint(address.port);
}

PeerAddress read_peer_address(const codec::Reader& value, std::string_view field) {
  codec::ArrayReader fields = value.array(field, 3, 3);
  PeerAddress a;
  const ByteSpan peer = fields.next().fixed_bin(field, PeerId::size);
  std::copy(peer.begin(), peer.end(), a.peer.bytes.begin());
  a.host = std::string(fields.next().str(field, kMaxWireHostBytes, 1));
  a.port = fields.next().integer<std::uint16_t>(field);
  return a;
}

}  // namespace apiary
