#pragma once
// AEAD frames of the secure channel, after the handshake (net/handshake.hpp).
//
// Wire format of one frame:
//   [4-byte big-endian length L][L bytes: ciphertext ‖ 16-byte tag]
// The nonce is a per-direction 64-bit counter (little-endian in the first 8
// nonce bytes, the rest zero) that both sides track and never send: a replayed,
// reordered or dropped frame fails authentication. The length prefix is the
// associated data, so it cannot be altered either. Receivers check L against
// the message size limit before allocating anything.
//
// Cipher choice (measured with benchmarks/bench_crypto.cpp, 1 MiB messages,
// per core in thread CPU time, 2-core Debian bookworm VM with AES-NI, 2026-11-22):
// AES-256-GCM seals 2.4 GB/s and opens 2.0 GB/s; XChaCha20-Poly1305 1.7 / 1.7.
// So AES-256-GCM is used when both peers have hardware AES (libsodium's
// crypto_aead_aes256gcm_is_available(): AES-NI + PCLMUL); otherwise
// XChaCha20-Poly1305, which is constant-time in software everywhere. The
// handshake negotiates it (both must support AES-GCM to use it). A 64-bit
// counter nonce is safe for both: keys are fresh per connection and direction.
//
// Errors: throws apiary::Error — bad_message for a malformed or unauthentic
// frame, resource_exhausted for a frame over the limit.
#include "core/bytes.hpp"

#include <sodium.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string_view>

namespace apiary {

enum class CipherSuite : std::uint8_t {
  xchacha20_poly1305 = 1,
  aes256_gcm = 2,
};

std::string_view cipher_name(CipherSuite suite) noexcept;
// True when this CPU can run AES-256-GCM (AES-NI); cached.
bool aes_gcm_available() noexcept;

using SessionKey = std::array<std::uint8_t, 32>;

constexpr std::size_t frame_header_size = 4;
constexpr std::size_t frame_tag_size = 16;  // same for both suites
constexpr std::size_t frame_overhead = frame_header_size + frame_tag_size;

// Encrypts outgoing frames of one direction.
class FrameSealer {
 public:
  FrameSealer(CipherSuite suite, const SessionKey& key);
  ~FrameSealer();
  FrameSealer(FrameSealer&&) noexcept;
  FrameSealer& operator=(FrameSealer&&) noexcept;

  // Writes the whole frame (header, ciphertext, tag) into `out`, whose size
  // must be plaintext.size() + frame_overhead. `plaintext` must not overlap
  // `out` except exactly at out[frame_header_size…] (in-place encryption).
  void seal(ByteSpan plaintext, MutableByteSpan out);
  // Convenience: allocates the frame.
  Bytes seal(ByteSpan plaintext);
  // Zero-copy form: encrypts `message` in place and writes the frame's header
  // and tag beside it; the wire frame is header ‖ message ‖ tag (a gathered
  // write), so a large message is never copied or reallocated.
  void seal_in_place(MutableByteSpan message, std::span<std::uint8_t, frame_header_size> header,
                     std::span<std::uint8_t, frame_tag_size> tag);
  std::uint64_t frames_sealed() const noexcept { return counter_; }

 private:
  struct State;
  std::unique_ptr<State> state_;
  std::uint64_t counter_ = 0;
};

// Decrypts incoming frames of one direction.
class FrameOpener {
 public:
  FrameOpener(CipherSuite suite, const SessionKey& key, std::size_t max_message_size);
  ~FrameOpener();
  FrameOpener(FrameOpener&&) noexcept;
  FrameOpener& operator=(FrameOpener&&) noexcept;

  // Size of the frame body (ciphertext + tag) announced by `header`. Throws
  // resource_exhausted when the plaintext would exceed max_message_size and
  // bad_message when the body cannot even hold a tag; allocate only after this.
  std::size_t body_size(std::span<const std::uint8_t, frame_header_size> header) const;
  // Authenticates and decrypts `body` (the body_size(header) bytes) in place;
  // returns the plaintext length (the first bytes of `body`). Throws
  // bad_message when authentication fails; the counter then stays put, but a
  // connection should be dropped after any failure.
  std::size_t open(std::span<const std::uint8_t, frame_header_size> header, MutableByteSpan body);
  std::size_t max_message_size() const noexcept { return max_message_size_; }
  std::uint64_t frames_opened() const noexcept { return counter_; }

 private:
  struct State;
  std::unique_ptr<State> state_;
  std::uint64_t counter_ = 0;
  std::size_t max_message_size_;
};

}  // namespace apiary
