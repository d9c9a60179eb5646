#pragma once
// BLAKE2b hashing (libsodium crypto_generichash): 160-bit ids (peer ids, DHT
// keys), 256-bit digests (transcripts, content hashes) and an incremental
// hasher for data that arrives in pieces. Also ensure_sodium(), which every
// user of libsodium in core/ calls first. Errors: throws apiary::Error{internal}
// only if libsodium cannot initialise.
#include "core/bytes.hpp"

#include <sodium.h>

#include <array>
#include <cstddef>
#include <cstdint>

namespace apiary {

using Hash160 = std::array<std::uint8_t, 20>;
using Hash256 = std::array<std::uint8_t, 32>;

// Initialises libsodium once per process (thread-safe, cheap after the first call).
void ensure_sodium();

Hash160 hash160(ByteSpan data);
Hash256 hash256(ByteSpan data);
// Keyed BLAKE2b-256 (a MAC / KDF); key length 16..64 bytes.
Hash256 keyed_hash256(ByteSpan key, ByteSpan data);

// Incremental BLAKE2b with an output of 16..64 bytes (default 32).
class Hasher {
 public:
  explicit Hasher(std::size_t out_len = 32, ByteSpan key = {});
  Hasher& update(ByteSpan data);
  // Writes out_len bytes into `out` (whose size must equal out_len). Call once.
  void finalize(MutableByteSpan out);
  Hash256 finalize256();  // requires out_len == 32
  Hash160 finalize160();  // requires out_len == 20

 private:
  crypto_generichash_state state_;
  std::size_t out_len_;
  bool finalized_ = false;
};

}  // namespace apiary
