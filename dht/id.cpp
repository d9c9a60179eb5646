#include "dht/id.hpp"

#include <sodium.h>

#include <bit>

namespace apiary::dht {

NodeId NodeId::from_peer(const PeerId& peer) noexcept {
  NodeId id;
  id.bytes = peer.bytes;
  return id;
}

NodeId NodeId::of_key(ByteSpan key) noexcept {
  NodeId id;
  crypto_generichash(id.bytes.data(), id.bytes.size(), key.data(), key.size(), nullptr, 0);
  return id;
}

NodeId NodeId::random() noexcept {
  NodeId id;
  randombytes_buf(id.bytes.data(), id.bytes.size());
  return id;
}

PeerId NodeId::to_peer() const noexcept {
  PeerId peer;
  peer.bytes = bytes;
  return peer;
}

std::string NodeId::to_hex() const {
  return apiary::to_hex(bytes);
}

void NodeId::set_bit(int i, bool value) noexcept {
  const auto mask = static_cast<std::uint8_t>(1u << (7 - i % 8));
  if (value)
    bytes[i / 8] |= mask;
  else
    bytes[i / 8] &= static_cast<std::uint8_t>(~mask);
}

int common_prefix_length(const NodeId& a, const NodeId& b) noexcept {
  for (std::size_t i = 0; i < NodeId::size; ++i) {
    const std::uint8_t x = a.bytes[i] ^ b.bytes[i];
    if (x != 0) return static_cast<int>(i * 8) + std::countl_zero(x);
  }
  return NodeId::bits;
}

NodeId random_id_with_prefix(const NodeId& prefix, int depth) noexcept {
  NodeId id = NodeId::random();
  for (int i = 0; i < depth && i < NodeId::bits; ++i) id.set_bit(i, prefix.bit(i));
  return id;
}

}  // namespace apiary::dht
