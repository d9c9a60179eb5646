#pragma once
// A PeerAddress inside a msgpack message (core/codec): [peer id (20 bytes),
// host, port]. The one form for every message that carries addresses — the
// DHT's node lists and the averaging groups' members and hints.
// Errors: read_peer_address throws apiary::Error{bad_message} naming `field`.
#include "core/codec.hpp"
#include "net/address.hpp"

#include <cstddef>
#include <string_view>

namespace apiary {

inline constexpr std::size_t kMaxWireHostBytes = 255;

void write_peer_address(codec::Writer& w, const PeerAddress& address);
PeerAddress read_peer_address(const codec::Reader& value, std::string_view field);

}  // namespace apiary
