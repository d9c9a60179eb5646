#pragma once
// DHT identifiers: 160-bit node ids and key ids, compared by XOR distance.
//
// A node id is the peer id (BLAKE2b-160 of the peer's Ed25519 public key, see
// core/identity.hpp); a key id is BLAKE2b-160 of the key's bytes, so nodes and
// keys share one id space. Errors: none thrown (pure value type).
#include "core/bytes.hpp"
#include "core/identity.hpp"

#include <array>
#include <compare>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>

namespace apiary::dht {

struct NodeId {
  static constexpr std::size_t size = 20;
  static constexpr int bits = 160;
  std::array<std::uint8_t, size> bytes{};

  static NodeId from_peer(const PeerId& peer) noexcept;
  // BLAKE2b-160 of the key's bytes.
  static NodeId of_key(ByteSpan key) noexcept;
  // Uniformly random (libsodium randombytes).
  static NodeId random() noexcept;

  PeerId to_peer() const noexcept;
  std::string to_hex() const;
  // Bit `i`, most significant first (i in [0, 160)).
  bool bit(int i) const noexcept { return (bytes[i / 8] >> (7 - i % 8)) & 1; }
  void set_bit(int i, bool value) noexcept;
  auto operator<=>(const NodeId&) const = default;
};

// XOR distance as a 160-bit big-endian number; compare with <.
inline NodeId distance(const NodeId& a, const NodeId& b) noexcept {
  NodeId d;
  for (std::size_t i = 0; i < NodeId::size; ++i) d.bytes[i] = a.bytes[i] ^ b.bytes[i];
  return d;
}

// True when `a` is strictly closer to `target` than `b`.
inline bool closer(const NodeId& a, const NodeId& b, const NodeId& target) noexcept {
  for (std::size_t i = 0; i < NodeId::size; ++i) {
    const std::uint8_t da = a.bytes[i] ^ target.bytes[i];
    const std::uint8_t db = b.bytes[i] ^ target.bytes[i];
    if (da != db) return da < db;
  }
  return false;
}

// Number of leading bits `a` and `b` share (160 when equal).
int common_prefix_length(const NodeId& a, const NodeId& b) noexcept;

// A random id that shares exactly the first `depth` bits of `prefix`
// (the remaining bits random). Used to refresh a bucket.
NodeId random_id_with_prefix(const NodeId& prefix, int depth) noexcept;

}  // namespace apiary::dht

template <>
struct std::hash<apiary::dht::NodeId> {
  std::size_t operator()(const apiary::dht::NodeId& id) const noexcept {
    std::size_t h = 0;
    for (std::size_t i = 0; i < sizeof(h); ++i) h = (h << 8) | id.bytes[i];
    return h;
  }
};
