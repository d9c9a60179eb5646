#include "core/hash.hpp"

#include "core/error.hpp"

#include <string>

namespace apiary {

void ensure_sodium() {
  static const bool ready = sodium_init() >= 0;
  if (!ready) throw Error(Errc::internal, "libsodium failed to initialise");
}

Hash160 hash160(ByteSpan data) {
  Hasher hasher(20);
  hasher.update(data);
  return hasher.finalize160();
}

Hash256 hash256(ByteSpan data) {
  Hasher hasher(32);
  hasher.update(data);
  return hasher.finalize256();
}

Hash256 keyed_hash256(ByteSpan key, ByteSpan data) {
  Hasher hasher(32, key);
  hasher.update(data);
  return hasher.finalize256();
}

Hasher::Hasher(std::size_t out_len, ByteSpan key) : out_len_(out_len) {
  ensure_sodium();
  if (out_len < crypto_generichash_BYTES_MIN || out_len > crypto_generichash_BYTES_MAX)
    throw Error(Errc::invalid_argument,
                "BLAKE2b output length must be 16..64 bytes, got " + std::to_string(out_len));
  if (!key.empty() && (key.size() < crypto_generichash_KEYBYTES_MIN ||
                       key.size() > crypto_generichash_KEYBYTES_MAX))
    throw Error(Errc::invalid_argument,
                "BLAKE2b key length must be 16..64 bytes, got " + std::to_string(key.size()));
  crypto_generichash_init(&state_, key.empty() ? nullptr : key.data(), key.size(), out_len);
}

Hasher& Hasher::update(ByteSpan data) {
  if (finalized_) throw Error(Errc::failed_precondition, "Hasher::update after finalize");
  crypto_generichash_update(&state_, data.data(), data.size());
  return *this;
}

void Hasher::finalize(MutableByteSpan out) {
  if (finalized_) throw Error(Errc::failed_precondition, "Hasher finalized twice");
  if (out.size() != out_len_)
    throw Error(Errc::invalid_argument, "Hasher::finalize: output span has the wrong size");
  finalized_ = true;
  crypto_generichash_final(&state_, out.data(), out.size());
}

Hash256 Hasher::finalize256() {
  Hash256 out;
  finalize(out);
  return out;
}

Hash160 Hasher::finalize160() {
  Hash160 out;
  finalize(out);
  return out;
}

}  // namespace apiary
