#pragma once
// Peer identity: an Ed25519 key pair (libsodium). The peer id is the 160-bit
// BLAKE2b hash of the public key, printed as 40 lowercase hex digits; the DHT
// uses the same 160 bits as the node id. Errors: throws apiary::Error.
#include "core/bytes.hpp"

#include <array>
#include <compare>
#include <cstddef>
#include <cstring>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace apiary {

struct PeerId {
  static constexpr std::size_t size = 20;
  std::array<std::uint8_t, size> bytes{};

  std::string to_string() const;  // 40 hex digits
  // nullopt unless exactly 40 hex digits.
  static std::optional<PeerId> parse(std::string_view text);
  auto operator<=>(const PeerId&) const = default;
};

struct PublicKey {
  static constexpr std::size_t size = 32;
  std::array<std::uint8_t, size> bytes{};

  PeerId peer_id() const;
  bool verify(ByteSpan message, ByteSpan signature) const noexcept;
  auto operator<=>(const PublicKey&) const = default;
};

using Signature = std::array<std::uint8_t, 64>;

class Identity {
 public:
  static Identity generate();
  // Deterministic identity from a 32-byte Ed25519 seed (tests, reproducible runs).
  static Identity from_seed(ByteSpan seed);
  // Refuses (Errc::permission_denied) a key file that group or others can read,
  // naming the file and the chmod that fixes it; Errc::bad_message when corrupt.
  static Identity load(const std::filesystem::path& file);
  // Key file format (text, 3 lines, see core/identity.cpp):
  //   apiary-ed25519-key v1
  //   seed <64 hex digits: the 32-byte Ed25519 seed>
  //   peer-id <40 hex digits, checked against the seed on load>
  // Writes atomically with mode 0600; refuses to overwrite unless `overwrite`
  // (Errc::failed_precondition); Errc::io_error when the file system fails.
  void save(const std::filesystem::path& file, bool overwrite = false) const;

  const PublicKey& public_key() const noexcept { return public_key_; }
  const PeerId& peer_id() const noexcept { return peer_id_; }
  Signature sign(ByteSpan message) const;

 private:
  Identity() = default;
  std::array<std::uint8_t, 64> secret_key_{};  // libsodium's seed‖public layout
  PublicKey public_key_;
  PeerId peer_id_;
};

}  // namespace apiary

template <>
struct std::hash<apiary::PeerId> {
  std::size_t operator()(const apiary::PeerId& id) const noexcept {
    std::size_t h;
    static_assert(sizeof(h) <= apiary::PeerId::size);
    std::memcpy(&h, id.bytes.data(), sizeof(h));
    return h;
  }
};
