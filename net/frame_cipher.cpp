#include "net/frame_cipher.hpp"

#include "core/error.hpp"
#include "core/hash.hpp"

#include <cstring>
#include <limits>
#include <string>

#if APIARY_HAVE_OPENSSL
#include <openssl/evp.h>
#endif

namespace apiary {

std::string_view cipher_name(CipherSuite suite) noexcept {
  switch (suite) {
    case CipherSuite::xchacha20_poly1305:
      return "xchacha20-poly1305";
    case CipherSuite::aes256_gcm:
      return "aes256-gcm";
  }
  return "unknown";
}

bool aes_gcm_available() noexcept {
  static const bool available = sodium_init() >= 0 && crypto_aead_aes256gcm_is_available() == 1;
  return available;
}

static_assert(crypto_aead_aes256gcm_ABYTES == frame_tag_size);
static_assert(crypto_aead_xchacha20poly1305_ietf_ABYTES == frame_tag_size);

namespace {

#if APIARY_HAVE_OPENSSL
// OpenSSL's AES-256-GCM: the same algorithm as libsodium's (identical frames),
// but with VAES/VPCLMULQDQ code paths it runs ~2.5x faster on CPUs that have
// them, and the transport's throughput is bound by this cipher. The context
// keeps the key schedule; each frame only sets its nonce.
class EvpAesGcm {
 public:
  EvpAesGcm(const SessionKey& key, bool encrypt) : ctx_(EVP_CIPHER_CTX_new()) {
    if (ctx_ == nullptr ||
        EVP_CipherInit_ex(ctx_, EVP_aes_256_gcm(), nullptr, nullptr, nullptr, encrypt ? 1 : 0) !=
            1 ||
        EVP_CIPHER_CTX_ctrl(ctx_, EVP_CTRL_GCM_SET_IVLEN, 12, nullptr) != 1 ||
        EVP_CipherInit_ex(ctx_, nullptr, nullptr, key.data(), nullptr, -1) != 1) {
      EVP_CIPHER_CTX_free(ctx_);
      throw Error(Errc::internal, "OpenSSL AES-256-GCM setup failed");
    }
  }
  ~EvpAesGcm() { EVP_CIPHER_CTX_free(ctx_); }
  EvpAesGcm(const EvpAesGcm&) = delete;
  EvpAesGcm& operator=(const EvpAesGcm&) = delete;

  // Encrypts `text` in place and writes the tag.
  void seal(const std::uint8_t* nonce, ByteSpan aad, MutableByteSpan text, std::uint8_t* tag) {
    int n = 0;
    bool ok = EVP_CipherInit_ex(ctx_, nullptr, nullptr, nullptr, nonce, -1) == 1 &&
              EVP_CipherUpdate(ctx_, nullptr, &n, aad.data(), static_cast<int>(aad.size())) == 1 &&
              update(text) && EVP_CipherFinal_ex(ctx_, nullptr, &n) == 1 &&
              EVP_CIPHER_CTX_ctrl(ctx_, EVP_CTRL_GCM_GET_TAG, frame_tag_size, tag) == 1;
    if (!ok) throw Error(Errc::internal, "OpenSSL AES-256-GCM seal failed");
  }
  // Decrypts `text` in place; false when the tag does not authenticate it
  // (the caller then discards the bytes).
  bool open(const std::uint8_t* nonce, ByteSpan aad, MutableByteSpan text,
            const std::uint8_t* tag) {
    int n = 0;
    std::array<std::uint8_t, frame_tag_size> expected;
    std::memcpy(expected.data(), tag, expected.size());
    return EVP_CipherInit_ex(ctx_, nullptr, nullptr, nullptr, nonce, -1) == 1 &&
           EVP_CipherUpdate(ctx_, nullptr, &n, aad.data(), static_cast<int>(aad.size())) == 1 &&
           update(text) &&
           EVP_CIPHER_CTX_ctrl(ctx_, EVP_CTRL_GCM_SET_TAG, frame_tag_size, expected.data()) == 1 &&
           EVP_CipherFinal_ex(ctx_, nullptr, &n) == 1;
  }

 private:
  // In place, in pieces that fit OpenSSL's int lengths.
  bool update(MutableByteSpan text) {
    constexpr std::size_t piece = std::size_t{1} << 30;
    for (std::size_t at = 0; at < text.size(); at += piece) {
      const int len = static_cast<int>(std::min(piece, text.size() - at));
      int n = 0;
      if (EVP_CipherUpdate(ctx_, text.data() + at, &n, text.data() + at, len) != 1 || n != len)
        return false;
    }
    return true;
  }
  EVP_CIPHER_CTX* ctx_;
};
#endif

// Key material for one direction: the expanded AES key schedule (libsodium
// wants it 16-byte aligned, OpenSSL keeps its own) or the raw XChaCha key.
struct CipherState {
  CipherSuite suite;
  alignas(16) crypto_aead_aes256gcm_state aes;
  SessionKey key;
#if APIARY_HAVE_OPENSSL
  std::unique_ptr<EvpAesGcm> evp;
#endif

  CipherState(CipherSuite s, const SessionKey& k, [[maybe_unused]] bool encrypt)
      : suite(s), key(k) {
    ensure_sodium();
    if (suite == CipherSuite::aes256_gcm) {
      if (!aes_gcm_available())
        throw Error(Errc::failed_precondition, "AES-256-GCM is not available on this CPU");
#if APIARY_HAVE_OPENSSL
      evp = std::make_unique<EvpAesGcm>(key, encrypt);
#else
      crypto_aead_aes256gcm_beforenm(&aes, key.data());
#endif
    } else if (suite != CipherSuite::xchacha20_poly1305) {
      throw Error(Errc::invalid_argument, "unknown cipher suite");
    }
  }
  ~CipherState() {
    sodium_memzero(&aes, sizeof aes);
    sodium_memzero(key.data(), key.size());
  }
};

// Nonce = counter (little-endian) in the first 8 bytes, zeros after.
template <std::size_t N>
std::array<std::uint8_t, N> counter_nonce(std::uint64_t counter) {
  std::array<std::uint8_t, N> nonce{};
  for (int i = 0; i < 8; ++i) nonce[i] = static_cast<std::uint8_t>(counter >> (8 * i));
  return nonce;
}

void put_be32(std::uint8_t* out, std::uint32_t v) {
  out[0] = static_cast<std::uint8_t>(v >> 24);
  out[1] = static_cast<std::uint8_t>(v >> 16);
  out[2] = static_cast<std::uint8_t>(v >> 8);
  out[3] = static_cast<std::uint8_t>(v);
}

std::uint32_t get_be32(const std::uint8_t* in) {
  return std::uint32_t{in[0]} << 24 | std::uint32_t{in[1]} << 16 | std::uint32_t{in[2]} << 8 |
         std::uint32_t{in[3]};
}

}  // namespace

struct FrameSealer::State : CipherState {
  State(CipherSuite s, const SessionKey& k) : CipherState(s, k, true) {}
};
struct FrameOpener::State : CipherState {
  State(CipherSuite s, const SessionKey& k) : CipherState(s, k, false) {}
};

FrameSealer::FrameSealer(CipherSuite suite, const SessionKey& key)
    : state_(std::make_unique<State>(suite, key)) {}
FrameSealer::~FrameSealer() = default;
FrameSealer::FrameSealer(FrameSealer&&) noexcept = default;
FrameSealer& FrameSealer::operator=(FrameSealer&&) noexcept = default;

void FrameSealer::seal(ByteSpan plaintext, MutableByteSpan out) {
  if (plaintext.size() > std::numeric_limits<std::uint32_t>::max() - frame_tag_size)
    throw Error(Errc::resource_exhausted, "message too large for one frame");
  if (out.size() != plaintext.size() + frame_overhead)
    throw Error(Errc::invalid_argument, "FrameSealer::seal: output span has the wrong size");
  if (counter_ == std::numeric_limits<std::uint64_t>::max())
    throw Error(Errc::resource_exhausted, "frame counter exhausted; reconnect");
  const auto body_len = static_cast<std::uint32_t>(plaintext.size() + frame_tag_size);
  put_be32(out.data(), body_len);
  std::uint8_t* body = out.data() + frame_header_size;
  unsigned long long clen = 0;
#if APIARY_HAVE_OPENSSL
  if (state_->suite == CipherSuite::aes256_gcm) {
    auto nonce = counter_nonce<crypto_aead_aes256gcm_NPUBBYTES>(counter_);
    if (!plaintext.empty() && body != plaintext.data())
      std::memmove(body, plaintext.data(), plaintext.size());
    state_->evp->seal(nonce.data(), ByteSpan(out.data(), frame_header_size),
                      MutableByteSpan(body, plaintext.size()), body + plaintext.size());
    ++counter_;
    return;
  }
#endif
  if (state_->suite == CipherSuite::aes256_gcm) {
    auto nonce = counter_nonce<crypto_aead_aes256gcm_NPUBBYTES>(counter_);
    crypto_aead_aes256gcm_encrypt_afternm(body, &clen, plaintext.data(), plaintext.size(),
                                          out.data(), frame_header_size, nullptr, nonce.data(),
                                          &state_->aes);
  } else {
    auto nonce = counter_nonce<crypto_aead_xchacha20poly1305_ietf_NPUBBYTES>(counter_);
    crypto_aead_xchacha20poly1305_ietf_encrypt(body, &clen, plaintext.data(), plaintext.size(),
                                               out.data(), frame_header_size, nullptr, nonce.data(),
                                               state_->key.data());
  }
  ++counter_;
}

void FrameSealer::seal_in_place(MutableByteSpan message,
                                std::span<std::uint8_t, frame_header_size> header,
                                std::span<std::uint8_t, frame_tag_size> tag) {
  if (message.size() > std::numeric_limits<std::uint32_t>::max() - frame_tag_size)
    throw Error(Errc::resource_exhausted, "message too large for one frame");
  if (counter_ == std::numeric_limits<std::uint64_t>::max())
    throw Error(Errc::resource_exhausted, "frame counter exhausted; reconnect");
  put_be32(header.data(), static_cast<std::uint32_t>(message.size() + frame_tag_size));
  // libsodium declares the text pointers non-null even for empty messages.
  std::uint8_t empty = 0;
  std::uint8_t* text = message.empty() ? &empty : message.data();
  unsigned long long tag_len = 0;
#if APIARY_HAVE_OPENSSL
  if (state_->suite == CipherSuite::aes256_gcm) {
    auto nonce = counter_nonce<crypto_aead_aes256gcm_NPUBBYTES>(counter_);
    state_->evp->seal(nonce.data(), ByteSpan(header.data(), header.size()), message, tag.data());
    ++counter_;
    return;
  }
#endif
  if (state_->suite == CipherSuite::aes256_gcm) {
    auto nonce = counter_nonce<crypto_aead_aes256gcm_NPUBBYTES>(counter_);
    crypto_aead_aes256gcm_encrypt_detached_afternm(text, tag.data(), &tag_len, text, message.size(),
                                                   header.data(), header.size(), nullptr,
                                                   nonce.data(), &state_->aes);
  } else {
    auto nonce = counter_nonce<crypto_aead_xchacha20poly1305_ietf_NPUBBYTES>(counter_);
    crypto_aead_xchacha20poly1305_ietf_encrypt_detached(
        text, tag.data(), &tag_len, text, message.size(), header.data(), header.size(), nullptr,
        nonce.data(), state_->key.data());
  }
  ++counter_;
}

Bytes FrameSealer::seal(ByteSpan plaintext) {
  Bytes out(plaintext.size() + frame_overhead);
  seal(plaintext, out);
  return out;
}

FrameOpener::FrameOpener(CipherSuite suite, const SessionKey& key, std::size_t max_message_size)
    : state_(std::make_unique<State>(suite, key)), max_message_size_(max_message_size) {}
FrameOpener::~FrameOpener() = default;
FrameOpener::FrameOpener(FrameOpener&&) noexcept = default;
FrameOpener& FrameOpener::operator=(FrameOpener&&) noexcept = default;

std::size_t FrameOpener::body_size(std::span<const std::uint8_t, frame_header_size> header) const {
  const std::size_t len = get_be32(header.data());
  if (len < frame_tag_size)
    throw Error(Errc::bad_message,
                "frame of " + std::to_string(len) + " bytes is shorter than its tag");
  if (len - frame_tag_size > max_message_size_)
    throw Error(Errc::resource_exhausted, "frame of " + std::to_string(len - frame_tag_size) +
                                              " bytes exceeds the limit of " +
                                              std::to_string(max_message_size_) + " bytes");
  return len;
}

std::size_t FrameOpener::open(std::span<const std::uint8_t, frame_header_size> header,
                              MutableByteSpan body) {
  if (body.size() != body_size(header))
    throw Error(Errc::bad_message, "frame body length does not match its header");
  unsigned long long mlen = 0;
  int rc;
#if APIARY_HAVE_OPENSSL
  if (state_->suite == CipherSuite::aes256_gcm) {
    auto nonce = counter_nonce<crypto_aead_aes256gcm_NPUBBYTES>(counter_);
    const std::size_t text_size = body.size() - frame_tag_size;
    const bool ok = state_->evp->open(nonce.data(), ByteSpan(header.data(), header.size()),
                                      body.first(text_size), body.data() + text_size);
    rc = ok ? 0 : -1;
    mlen = text_size;
    if (!ok) sodium_memzero(body.data(), text_size);  // never leave unauthenticated plaintext
  } else
#endif
      if (state_->suite == CipherSuite::aes256_gcm) {
    auto nonce = counter_nonce<crypto_aead_aes256gcm_NPUBBYTES>(counter_);
    rc = crypto_aead_aes256gcm_decrypt_afternm(body.data(), &mlen, nullptr, body.data(),
                                               body.size(), header.data(), header.size(),
                                               nonce.data(), &state_->aes);
  } else {
    auto nonce = counter_nonce<crypto_aead_xchacha20poly1305_ietf_NPUBBYTES>(counter_);
    rc = crypto_aead_xchacha20poly1305_ietf_decrypt(body.data(), &mlen, nullptr, body.data(),
                                                    body.size(), header.data(), header.size(),
                                                    nonce.data(), state_->key.data());
  }
  if (rc != 0)
    throw Error(Errc::bad_message, "frame " + std::to_string(counter_) +
                                       " failed authentication (tampered, replayed or reordered)");
  ++counter_;
  return static_cast<std::size_t>(mlen);
}

}  // namespace apiary
