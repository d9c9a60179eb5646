#pragma once
// Secure-channel handshake as a pure state machine over byte buffers: no
// sockets, no clocks, so tests and fuzzers drive it directly (the transport
// adds the socket and the deadline, net/tcp_wire.hpp).
//
// Messages on the wire are [2-byte big-endian length][body], body ≤
// Handshake::max_message_size. Flow (I = initiator/dialer, R = responder):
//   M1 I→R hello_i  {type 1, version, cipher mask, Ed25519 key, X25519 ephemeral
//                    key, listen port (0 = client mode), membership token}
//   M2 R→I hello_r  {type 2, the same fields} ‖ Ed25519 signature of R
//   M3 I→R auth_i   {type 3} ‖ Ed25519 signature of I
//   M4 R→I verdict  {type 4, status, reason}: accepted, or why R refused I
// Transcript hash th = BLAKE2b-256(label ‖ len‖M1 ‖ len‖hello_r body); both
// ephemeral keys and both hellos are in it. R signs ("…responder" ‖ th), I
// signs ("…initiator" ‖ th): a signature is bound to this session's fresh
// ephemeral keys and to a role, so it cannot be replayed elsewhere. Session
// keys: BLAKE2b-256 keyed by the X25519 shared secret over (direction label ‖
// th), one key per direction. The cipher is AES-256-GCM when both masks offer
// it, else XChaCha20-Poly1305 (net/frame_cipher.hpp).
//
// Checks: version; signature; the dialer's expected PeerId (permission_denied
// "peer id mismatch: dialled X but the peer presented Y"); TransportOptions-
// style admit() on the remote token after its signature is verified
// (permission_denied "membership token refused"); admit_identity() on the
// claimed key before the responder's key exchange, even before it generates
// its ephemeral key (resource_exhausted, no verdict sent: the dialer sees the
// connection close). Malformed input throws bad_message. After on_message()
// throws, take_outgoing() may still hold a verdict for the peer (best effort)
// — send it, then drop the connection.
#include "core/bytes.hpp"
#include "core/identity.hpp"
#include "net/frame_cipher.hpp"

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>

namespace apiary {

constexpr std::uint8_t handshake_version = 1;

struct HandshakeConfig {
  std::uint16_t listen_port = 0;        // announced to the peer; 0 = client mode
  Bytes token;                          // membership token presented to the peer
  std::optional<PeerId> expected_peer;  // initiator only: whom we meant to dial
  std::function<bool(const PublicKey& remote, ByteSpan token)> admit;  // empty = open run
  // Responder only: asked with the key the initiator claims in its hello,
  // before any key exchange or signature (cheap refusal, e.g. too many
  // connections from that identity); false throws resource_exhausted.
  std::function<bool(const PublicKey& claimed)> admit_identity;
  bool offer_aes_gcm = true;  // offered only when this CPU also supports it
};

struct HandshakeResult {
  PublicKey remote_key;
  PeerId remote_peer;
  std::uint16_t remote_listen_port = 0;
  Bytes remote_token;
  CipherSuite cipher = CipherSuite::xchacha20_poly1305;
  SessionKey send_key{};
  SessionKey receive_key{};
};

// A decoded hello (M1 or M2 body); exposed for tests and the fuzzer.
struct HandshakeHello {
  std::uint8_t type = 0;
  std::uint8_t version = 0;
  std::uint8_t cipher_mask = 0;
  PublicKey identity_key;
  std::array<std::uint8_t, 32> ephemeral_key{};
  std::uint16_t listen_port = 0;
  Bytes token;
  std::optional<Signature> signature;  // present in M2
};

// Strict decoder: throws Error{bad_message} unless `body` is exactly one
// well-formed hello of the given type (1 or 2).
HandshakeHello decode_hello(ByteSpan body, std::uint8_t expected_type);

class Handshake {
 public:
  enum class Role { initiator, responder };
  static constexpr std::size_t max_message_size = 2048;
  static constexpr std::size_t max_token_size = 1024;

  Handshake(Role role, const Identity& identity, HandshakeConfig config);
  ~Handshake();
  Handshake(const Handshake&) = delete;
  Handshake& operator=(const Handshake&) = delete;

  Role role() const noexcept { return role_; }
  // The next framed message ([2-byte length][body]) to send, if any.
  std::optional<Bytes> take_outgoing();
  // Feeds one received message body (without its 2-byte length). Throws
  // apiary::Error on any failure; the handshake is then dead.
  void on_message(ByteSpan body);
  // Parses a 2-byte length prefix; throws bad_message when it is 0 or too big.
  static std::size_t message_length(std::span<const std::uint8_t, 2> prefix);

  bool done() const noexcept { return state_ == State::done; }
  bool failed() const noexcept { return state_ == State::failed; }
  // Valid once done().
  const HandshakeResult& result() const;

 private:
  enum class State { await_hello_r, await_auth_i, await_hello_i, await_verdict, done, failed };
  void handle_hello_i(ByteSpan body);
  void handle_hello_r(ByteSpan body);
  void handle_auth_i(ByteSpan body);
  void handle_verdict(ByteSpan body);
  Bytes encode_hello(std::uint8_t type) const;
  void queue(Bytes body);
  void queue_verdict(std::uint8_t status, std::string_view reason);
  void derive_keys(const std::array<std::uint8_t, 32>& remote_ephemeral);
  void check_token(const HandshakeHello& hello);
  void adopt_remote(HandshakeHello hello);
  std::uint8_t cipher_mask() const noexcept;

  Role role_;
  const Identity& identity_;
  HandshakeConfig config_;
  State state_;
  std::array<std::uint8_t, 32> ephemeral_public_{};
  std::array<std::uint8_t, 32> ephemeral_secret_{};
  Bytes m1_;  // hello_i body, kept for the transcript
  std::array<std::uint8_t, 32> transcript_{};
  std::optional<Bytes> outgoing_;
  HandshakeResult result_;
};

}  // namespace apiary
