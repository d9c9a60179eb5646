#include "net/handshake.hpp"

#include "core/error.hpp"
#include "core/hash.hpp"

#include <sodium.h>

#include <cstring>
#include <string>
#include <string_view>

namespace apiary {

namespace {

constexpr std::uint8_t type_hello_i = 1;
constexpr std::uint8_t type_hello_r = 2;
constexpr std::uint8_t type_auth_i = 3;
constexpr std::uint8_t type_verdict = 4;

constexpr std::uint8_t mask_xchacha = 1;
constexpr std::uint8_t mask_aes_gcm = 2;

constexpr std::uint8_t verdict_accepted = 0;
constexpr std::uint8_t verdict_refused = 1;
constexpr std::size_t max_reason_size = 200;

// type, version, mask, identity key, ephemeral key, port, token length.
constexpr std::size_t hello_fixed_size = 3 + 32 + 32 + 2 + 2;

constexpr std::string_view transcript_label = "apiary handshake v1";
constexpr std::string_view sign_label_responder = "apiary handshake v1 responder";
constexpr std::string_view sign_label_initiator = "apiary handshake v1 initiator";
constexpr std::string_view key_label_i2r = "apiary session key initiator->responder";
constexpr std::string_view key_label_r2i = "apiary session key responder->initiator";

[[noreturn]] void malformed(const std::string& why) {
  throw Error(Errc::bad_message, "malformed handshake message: " + why);
}

void put_u16(Bytes& out, std::uint16_t v) {
  out.push_back(static_cast<std::uint8_t>(v >> 8));
  out.push_back(static_cast<std::uint8_t>(v));
}

std::uint16_t get_u16(const std::uint8_t* p) {
  return static_cast<std::uint16_t>(std::uint16_t{p[0]} << 8 | p[1]);
}

void append(Bytes& out, ByteSpan data) {
  out.insert(out.end(), data.begin(), data.end());
}

// The message a role signs: label ‖ transcript hash.
Bytes signed_payload(std::string_view label, const std::array<std::uint8_t, 32>& transcript) {
  Bytes payload(as_bytes(label).begin(), as_bytes(label).end());
  append(payload, transcript);
  return payload;
}

// The transcript hash both roles sign: label ‖ len ‖ M1 ‖ len ‖ M2 without its
// signature (the responder hashes M2 before signing it, the initiator after
// stripping the signature), lengths as big-endian u16.
std::array<std::uint8_t, 32> transcript_hash(ByteSpan hello_i, ByteSpan hello_r_unsigned) {
  Hasher th;
  th.update(as_bytes(transcript_label));
  for (ByteSpan message : {hello_i, hello_r_unsigned}) {
    Bytes length;
    put_u16(length, static_cast<std::uint16_t>(message.size()));
    th.update(length).update(message);
  }
  return th.finalize256();
}

void check_version(const HandshakeHello& hello) {
  if (hello.version != handshake_version)
    throw Error(Errc::failed_precondition, "peer speaks handshake version " +
                                               std::to_string(hello.version) + ", this peer " +
                                               std::to_string(handshake_version));
}

}  // namespace

HandshakeHello decode_hello(ByteSpan body, std::uint8_t expected_type) {
  if (body.empty()) malformed("empty message");
  if (body[0] != expected_type)
    malformed("expected message type " + std::to_string(expected_type) + ", got " +
              std::to_string(body[0]));
  if (body.size() < hello_fixed_size)
    malformed("hello of " + std::to_string(body.size()) + " bytes is too short");
  HandshakeHello hello;
  const std::uint8_t* p = body.data();
  hello.type = p[0];
  hello.version = p[1];
  hello.cipher_mask = p[2];
  std::memcpy(hello.identity_key.bytes.data(), p + 3, 32);
  std::memcpy(hello.ephemeral_key.data(), p + 35, 32);
  hello.listen_port = get_u16(p + 67);
  const std::size_t token_size = get_u16(p + 69);
  if (token_size > Handshake::max_token_size)
    malformed("token of " + std::to_string(token_size) + " bytes exceeds the limit");
  const std::size_t signature_size = expected_type == type_hello_r ? crypto_sign_BYTES : 0;
  if (body.size() != hello_fixed_size + token_size + signature_size)
    malformed("hello length " + std::to_string(body.size()) + " does not match its fields");
  if ((hello.cipher_mask & mask_xchacha) == 0 ||
      (hello.cipher_mask & ~(mask_xchacha | mask_aes_gcm)) != 0)
    malformed("unknown cipher mask " + std::to_string(hello.cipher_mask));
  hello.token.assign(p + hello_fixed_size, p + hello_fixed_size + token_size);
  if (signature_size != 0) {
    Signature sig;
    std::memcpy(sig.data(), p + hello_fixed_size + token_size, sig.size());
    hello.signature = sig;
  }
  return hello;
}

Handshake::Handshake(Role role, const Identity& identity, HandshakeConfig config)
    : role_(role),
      identity_(identity),
      config_(std::move(config)),
      state_(role == Role::initiator ? State::await_hello_r : State::await_hello_i) {
  ensure_sodium();
  if (config_.token.size() > max_token_size)
    throw Error(Errc::invalid_argument,
                "membership token of " + std::to_string(config_.token.size()) +
                    " bytes exceeds the limit of " + std::to_string(max_token_size));
  if (role_ == Role::initiator) {
    crypto_box_keypair(ephemeral_public_.data(), ephemeral_secret_.data());
    m1_ = encode_hello(type_hello_i);
    queue(m1_);
  }
}

Handshake::~Handshake() {
  sodium_memzero(ephemeral_secret_.data(), ephemeral_secret_.size());
  sodium_memzero(result_.send_key.data(), result_.send_key.size());
  sodium_memzero(result_.receive_key.data(), result_.receive_key.size());
}

std::uint8_t Handshake::cipher_mask() const noexcept {
  std::uint8_t mask = mask_xchacha;
  if (config_.offer_aes_gcm && aes_gcm_available()) mask |= mask_aes_gcm;
  return mask;
}

Bytes Handshake::encode_hello(std::uint8_t type) const {
  Bytes body;
  body.reserve(hello_fixed_size + config_.token.size() + crypto_sign_BYTES);
  body.push_back(type);
  body.push_back(handshake_version);
  body.push_back(cipher_mask());
  append(body, identity_.public_key().bytes);
  append(body, ephemeral_public_);
  put_u16(body, config_.listen_port);
  put_u16(body, static_cast<std::uint16_t>(config_.token.size()));
  append(body, config_.token);
  return body;
}

void Handshake::queue(Bytes body) {
  Bytes framed;
  framed.reserve(2 + body.size());
  put_u16(framed, static_cast<std::uint16_t>(body.size()));
  append(framed, body);
  outgoing_ = std::move(framed);
}

void Handshake::queue_verdict(std::uint8_t status, std::string_view reason) {
  reason = reason.substr(0, max_reason_size);
  Bytes body{type_verdict, status, static_cast<std::uint8_t>(reason.size())};
  append(body, as_bytes(reason));
  queue(std::move(body));
}

std::optional<Bytes> Handshake::take_outgoing() {
  auto out = std::move(outgoing_);
  outgoing_.reset();
  return out;
}

std::size_t Handshake::message_length(std::span<const std::uint8_t, 2> prefix) {
  const std::size_t len = get_u16(prefix.data());
  if (len == 0 || len > max_message_size)
    malformed("length " + std::to_string(len) + " outside 1.." + std::to_string(max_message_size));
  return len;
}

const HandshakeResult& Handshake::result() const {
  if (state_ != State::done) throw Error(Errc::failed_precondition, "handshake not finished");
  return result_;
}

void Handshake::on_message(ByteSpan body) {
  if (body.size() > max_message_size) malformed("message too large");
  try {
    switch (state_) {
      case State::await_hello_i:
        handle_hello_i(body);
        break;
      case State::await_hello_r:
        handle_hello_r(body);
        break;
      case State::await_auth_i:
        handle_auth_i(body);
        break;
      case State::await_verdict:
        handle_verdict(body);
        break;
      case State::done:
        malformed("message after the handshake finished");
      case State::failed:
        throw Error(Errc::failed_precondition, "handshake already failed");
    }
  } catch (...) {
    state_ = State::failed;
    throw;
  }
}

void Handshake::derive_keys(const std::array<std::uint8_t, 32>& remote_ephemeral) {
  std::array<std::uint8_t, crypto_scalarmult_BYTES> shared;
  // Fails for low-order points (an all-zero shared secret).
  if (crypto_scalarmult(shared.data(), ephemeral_secret_.data(), remote_ephemeral.data()) != 0)
    throw Error(Errc::permission_denied, "handshake: the peer sent an invalid ephemeral key");
  auto derive = [&](std::string_view label) {
    Hasher hasher(32, shared);
    hasher.update(as_bytes(label)).update(transcript_);
    return hasher.finalize256();
  };
  const SessionKey i2r = derive(key_label_i2r);
  const SessionKey r2i = derive(key_label_r2i);
  sodium_memzero(shared.data(), shared.size());
  result_.send_key = role_ == Role::initiator ? i2r : r2i;
  result_.receive_key = role_ == Role::initiator ? r2i : i2r;
}

// The peer's identity, port and token, and the cipher both sides support.
void Handshake::adopt_remote(HandshakeHello hello) {
  result_.remote_key = hello.identity_key;
  result_.remote_peer = hello.identity_key.peer_id();
  result_.remote_listen_port = hello.listen_port;
  result_.remote_token = std::move(hello.token);
  result_.cipher = (hello.cipher_mask & cipher_mask() & mask_aes_gcm)
                       ? CipherSuite::aes256_gcm
                       : CipherSuite::xchacha20_poly1305;
}

void Handshake::check_token(const HandshakeHello& hello) {
  if (config_.admit && !config_.admit(hello.identity_key, hello.token))
    throw Error(Errc::permission_denied,
                "membership token refused for peer " + hello.identity_key.peer_id().to_string());
}

// Responder: got M1, answer with M2.
void Handshake::handle_hello_i(ByteSpan body) {
  HandshakeHello hello = decode_hello(body, type_hello_i);
  check_version(hello);
  if (config_.admit_identity && !config_.admit_identity(hello.identity_key))
    throw Error(Errc::resource_exhausted, "handshake: peer " +
                                              hello.identity_key.peer_id().to_string() +
                                              " holds as many connections as it may");
  // The responder's key pair only now: a refused hello costs no key generation.
  crypto_box_keypair(ephemeral_public_.data(), ephemeral_secret_.data());
  m1_.assign(body.begin(), body.end());
  Bytes hello_r = encode_hello(type_hello_r);
  transcript_ = transcript_hash(m1_, hello_r);
  derive_keys(hello.ephemeral_key);
  adopt_remote(std::move(hello));
  const Signature sig = identity_.sign(signed_payload(sign_label_responder, transcript_));
  append(hello_r, sig);
  queue(std::move(hello_r));
  state_ = State::await_auth_i;
}

// Initiator: got M2; verify the responder, answer with M3.
void Handshake::handle_hello_r(ByteSpan body) {
  HandshakeHello hello = decode_hello(body, type_hello_r);
  check_version(hello);
  const PeerId presented = hello.identity_key.peer_id();
  if (config_.expected_peer && *config_.expected_peer != presented)
    throw Error(Errc::permission_denied, "peer id mismatch: dialled " +
                                             config_.expected_peer->to_string() +
                                             " but the peer presented " + presented.to_string());
  const ByteSpan hello_r_unsigned = body.first(body.size() - crypto_sign_BYTES);
  transcript_ = transcript_hash(m1_, hello_r_unsigned);
  if (!hello.identity_key.verify(signed_payload(sign_label_responder, transcript_),
                                 *hello.signature))
    throw Error(Errc::permission_denied,
                "handshake signature of peer " + presented.to_string() + " is invalid");
  check_token(hello);
  derive_keys(hello.ephemeral_key);
  adopt_remote(std::move(hello));
  Bytes auth{type_auth_i};
  append(auth, identity_.sign(signed_payload(sign_label_initiator, transcript_)));
  queue(std::move(auth));
  state_ = State::await_verdict;
}

// Responder: got M3; verify the initiator, send the verdict.
void Handshake::handle_auth_i(ByteSpan body) {
  if (body.size() != 1 + crypto_sign_BYTES || body[0] != type_auth_i)
    malformed("expected an auth message of " + std::to_string(1 + crypto_sign_BYTES) + " bytes");
  if (!result_.remote_key.verify(signed_payload(sign_label_initiator, transcript_),
                                 body.subspan(1))) {
    queue_verdict(verdict_refused, "handshake signature invalid");
    throw Error(Errc::permission_denied,
                "handshake signature of peer " + result_.remote_peer.to_string() + " is invalid");
  }
  if (config_.admit && !config_.admit(result_.remote_key, result_.remote_token)) {
    queue_verdict(verdict_refused, "membership token refused");
    throw Error(Errc::permission_denied,
                "membership token refused for peer " + result_.remote_peer.to_string());
  }
  queue_verdict(verdict_accepted, {});
  state_ = State::done;
}

// Initiator: got M4.
void Handshake::handle_verdict(ByteSpan body) {
  if (body.size() < 3 || body[0] != type_verdict || body.size() != 3u + body[2] ||
      body[2] > max_reason_size)
    malformed("bad verdict message");
  if (body[1] == verdict_accepted) {
    state_ = State::done;
    return;
  }
  if (body[1] != verdict_refused) malformed("unknown verdict " + std::to_string(body[1]));
  std::string reason;
  for (std::uint8_t c : body.subspan(3))
    reason += (c >= 0x20 && c < 0x7f) ? static_cast<char>(c) : '?';
  throw Error(Errc::permission_denied,
              "peer " + result_.remote_peer.to_string() + " refused the connection: " + reason);
}

}  // namespace apiary
