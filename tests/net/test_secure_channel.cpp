// The handshake state machine and the AEAD frame cipher, without sockets.
#include "core/error.hpp"
#include "net/frame_cipher.hpp"
#include "net/handshake.hpp"

#include <gtest/gtest.h>

#include <random>
#include <string>

using namespace apiary;

namespace {

Errc code_of(const std::function<void()>& fn, std::string* message = nullptr) {
  try {
    fn();
  } catch (const Error& e) {
    if (message) *message = e.what();
    return e.code();
  }
  return Errc::ok;
}

// Body of a framed handshake message ([2-byte length][body]).
Bytes body_of(const Bytes& framed) {
  EXPECT_GE(framed.size(), 2u);
  std::array<std::uint8_t, 2> prefix{framed[0], framed[1]};
  EXPECT_EQ(Handshake::message_length(prefix), framed.size() - 2);
  return Bytes(framed.begin() + 2, framed.end());
}

// Passes messages between the two sides until both are done or one throws.
void exchange(Handshake& a, Handshake& b) {
  for (int step = 0; step < 10 && !(a.done() && b.done()); ++step) {
    if (auto out = a.take_outgoing()) b.on_message(body_of(*out));
    if (auto out = b.take_outgoing()) a.on_message(body_of(*out));
  }
}

struct Pair {
  Identity client = Identity::generate();
  Identity server = Identity::generate();
};

}  // namespace

TEST(Handshake, SucceedsAndAgreesOnKeysAndPeers) {
  Pair p;
  HandshakeConfig client_config;
  client_config.expected_peer = p.server.peer_id();
  client_config.token = {1, 2, 3};
  HandshakeConfig server_config;
  server_config.listen_port = 31337;
  Handshake client(Handshake::Role::initiator, p.client, client_config);
  Handshake server(Handshake::Role::responder, p.server, server_config);
  exchange(client, server);
  ASSERT_TRUE(client.done());
  ASSERT_TRUE(server.done());
  const auto& c = client.result();
  const auto& s = server.result();
  EXPECT_EQ(c.remote_peer, p.server.peer_id());
  EXPECT_EQ(s.remote_peer, p.client.peer_id());
  EXPECT_EQ(c.remote_listen_port, 31337);
  EXPECT_EQ(s.remote_listen_port, 0);
  EXPECT_EQ(s.remote_token, (Bytes{1, 2, 3}));
  EXPECT_EQ(c.send_key, s.receive_key);
  EXPECT_EQ(c.receive_key, s.send_key);
  EXPECT_NE(c.send_key, c.receive_key);
  EXPECT_EQ(c.cipher, s.cipher);
  EXPECT_EQ(c.cipher,
            aes_gcm_available() ? CipherSuite::aes256_gcm : CipherSuite::xchacha20_poly1305);
  EXPECT_FALSE(client.take_outgoing());
}

TEST(Handshake, FreshKeysPerSession) {
  Pair p;
  Handshake c1(Handshake::Role::initiator, p.client, {});
  Handshake s1(Handshake::Role::responder, p.server, {});
  exchange(c1, s1);
  Handshake c2(Handshake::Role::initiator, p.client, {});
  Handshake s2(Handshake::Role::responder, p.server, {});
  exchange(c2, s2);
  ASSERT_TRUE(c1.done() && c2.done());
  EXPECT_NE(c1.result().send_key, c2.result().send_key);
}

TEST(Handshake, FallsBackToXChaChaWhenOneSideLacksAes) {
  Pair p;
  HandshakeConfig no_aes;
  no_aes.offer_aes_gcm = false;
  Handshake client(Handshake::Role::initiator, p.client, no_aes);
  Handshake server(Handshake::Role::responder, p.server, {});
  exchange(client, server);
  ASSERT_TRUE(client.done() && server.done());
  EXPECT_EQ(client.result().cipher, CipherSuite::xchacha20_poly1305);
  EXPECT_EQ(server.result().cipher, CipherSuite::xchacha20_poly1305);
}

TEST(Handshake, WrongPeerIdIsRefusedWithClearMessage) {
  Pair p;
  Identity other = Identity::generate();
  HandshakeConfig config;
  config.expected_peer = other.peer_id();
  Handshake client(Handshake::Role::initiator, p.client, config);
  Handshake server(Handshake::Role::responder, p.server, {});
  std::string message;
  EXPECT_EQ(code_of([&] { exchange(client, server); }, &message), Errc::permission_denied);
  EXPECT_EQ(message, "peer id mismatch: dialled " + other.peer_id().to_string() +
                         " but the peer presented " + p.server.peer_id().to_string());
  EXPECT_TRUE(client.failed());
}

TEST(Handshake, ResponderRefusesTokenAndTellsTheInitiator) {
  Pair p;
  HandshakeConfig client_config;
  client_config.token = {9};
  HandshakeConfig server_config;
  PublicKey seen;
  server_config.admit = [&](const PublicKey& key, ByteSpan token) {
    seen = key;
    return token.size() == 1 && token[0] == 7;
  };
  Handshake client(Handshake::Role::initiator, p.client, client_config);
  Handshake server(Handshake::Role::responder, p.server, server_config);
  server.on_message(body_of(*client.take_outgoing()));
  client.on_message(body_of(*server.take_outgoing()));
  std::string message;
  EXPECT_EQ(code_of([&] { server.on_message(body_of(*client.take_outgoing())); }, &message),
            Errc::permission_denied);
  EXPECT_NE(message.find("membership token refused"), std::string::npos) << message;
  EXPECT_EQ(seen, p.client.public_key());
  auto verdict = server.take_outgoing();
  ASSERT_TRUE(verdict);
  EXPECT_EQ(code_of([&] { client.on_message(body_of(*verdict)); }, &message),
            Errc::permission_denied);
  EXPECT_NE(message.find("refused the connection: membership token refused"), std::string::npos)
      << message;
}

TEST(Handshake, InitiatorRefusesResponderToken) {
  Pair p;
  HandshakeConfig client_config;
  client_config.admit = [](const PublicKey&, ByteSpan token) { return !token.empty(); };
  Handshake client(Handshake::Role::initiator, p.client, client_config);
  Handshake server(Handshake::Role::responder, p.server, {});
  std::string message;
  EXPECT_EQ(code_of([&] { exchange(client, server); }, &message), Errc::permission_denied);
  EXPECT_NE(message.find("membership token refused"), std::string::npos) << message;
}

TEST(Handshake, TamperedOrReplayedResponderHelloFails) {
  Pair p;
  Handshake client(Handshake::Role::initiator, p.client, {});
  Handshake server(Handshake::Role::responder, p.server, {});
  server.on_message(body_of(*client.take_outgoing()));
  Bytes m2 = body_of(*server.take_outgoing());

  // Any flipped bit of the hello (port, keys, mask, signature) breaks it.
  for (std::size_t i : {std::size_t{2}, std::size_t{40}, std::size_t{68}, m2.size() - 1}) {
    Handshake fresh(Handshake::Role::initiator, p.client, {});
    Bytes bad = m2;
    bad[i] ^= 0x04;
    Errc code = code_of([&] { fresh.on_message(bad); });
    EXPECT_TRUE(code == Errc::permission_denied || code == Errc::bad_message) << i;
  }
  // M2 of one session replayed into another session (different ephemeral key).
  Handshake other_client(Handshake::Role::initiator, p.client, {});
  EXPECT_EQ(code_of([&] { other_client.on_message(m2); }), Errc::permission_denied);
  // The genuine one still works for its session.
  EXPECT_NO_THROW(client.on_message(m2));
}

TEST(Handshake, InitiatorSignatureCannotBeReplayed) {
  Pair p;
  Handshake c1(Handshake::Role::initiator, p.client, {});
  Handshake s1(Handshake::Role::responder, p.server, {});
  Bytes m1 = body_of(*c1.take_outgoing());
  s1.on_message(m1);
  c1.on_message(body_of(*s1.take_outgoing()));
  Bytes m3 = body_of(*c1.take_outgoing());
  // An eavesdropper replays M1 and M3 to a new server session: the server's
  // fresh ephemeral key changes the transcript, so the old signature fails.
  Handshake s2(Handshake::Role::responder, p.server, {});
  s2.on_message(m1);
  (void)s2.take_outgoing();
  EXPECT_EQ(code_of([&] { s2.on_message(m3); }), Errc::permission_denied);
  EXPECT_NO_THROW(s1.on_message(m3));
  EXPECT_TRUE(s1.done());
}

TEST(Handshake, MessagesOutOfOrderAndGarbageAreRejected) {
  Pair p;
  Handshake server(Handshake::Role::responder, p.server, {});
  EXPECT_EQ(code_of([&] { server.on_message(Bytes{3, 0, 0}); }), Errc::bad_message);
  EXPECT_TRUE(server.failed());
  EXPECT_EQ(code_of([&] { server.on_message(Bytes{1}); }), Errc::failed_precondition);

  std::array<std::uint8_t, 2> zero{0, 0}, huge{0xff, 0xff};
  EXPECT_EQ(code_of([&] { Handshake::message_length(zero); }), Errc::bad_message);
  EXPECT_EQ(code_of([&] { Handshake::message_length(huge); }), Errc::bad_message);

  Handshake client(Handshake::Role::initiator, p.client, {});
  Bytes m1 = body_of(*client.take_outgoing());
  EXPECT_NO_THROW(decode_hello(m1, 1));
  EXPECT_EQ(code_of([&] { decode_hello(m1, 2); }), Errc::bad_message);
  Bytes truncated(m1.begin(), m1.end() - 1);
  EXPECT_EQ(code_of([&] { decode_hello(truncated, 1); }), Errc::bad_message);
  Bytes longer = m1;
  longer.push_back(0);
  EXPECT_EQ(code_of([&] { decode_hello(longer, 1); }), Errc::bad_message);
  Bytes bad_mask = m1;
  bad_mask[2] = 0x80;
  EXPECT_EQ(code_of([&] { decode_hello(bad_mask, 1); }), Errc::bad_message);
  Bytes bad_version = m1;
  bad_version[1] = 99;
  Handshake s3(Handshake::Role::responder, p.server, {});
  EXPECT_EQ(code_of([&] { s3.on_message(bad_version); }), Errc::failed_precondition);

  std::mt19937 rng(42);
  for (int i = 0; i < 2000; ++i) {
    Bytes junk(rng() % 200);
    for (auto& b : junk) b = static_cast<std::uint8_t>(rng());
    if (!junk.empty() && i % 2) junk[0] = 1;
    Handshake s(Handshake::Role::responder, p.server, {});
    Errc code = code_of([&] { s.on_message(junk); });
    EXPECT_NE(code, Errc::ok);
  }
}

TEST(Handshake, OversizedOwnTokenIsRefused) {
  Pair p;
  HandshakeConfig config;
  config.token = Bytes(Handshake::max_token_size + 1);
  EXPECT_EQ(code_of([&] { Handshake h(Handshake::Role::initiator, p.client, config); }),
            Errc::invalid_argument);
}

class FrameCipherTest : public ::testing::TestWithParam<CipherSuite> {
 protected:
  void SetUp() override {
    if (GetParam() == CipherSuite::aes256_gcm && !aes_gcm_available())
      GTEST_SKIP() << "AES-256-GCM is not available on this CPU";
    key.fill(0x42);
  }
  SessionKey key;
};

TEST_P(FrameCipherTest, RoundTripInPlace) {
  FrameSealer sealer(GetParam(), key);
  FrameOpener opener(GetParam(), key, 1 << 20);
  for (std::size_t size : {0, 1, 15, 16, 17, 1000, 65536, 1 << 20}) {
    Bytes message(size);
    for (std::size_t i = 0; i < size; ++i) message[i] = static_cast<std::uint8_t>(i * 7);
    Bytes frame = sealer.seal(message);
    ASSERT_EQ(frame.size(), size + frame_overhead);
    std::array<std::uint8_t, frame_header_size> header;
    std::copy_n(frame.begin(), frame_header_size, header.begin());
    ASSERT_EQ(opener.body_size(header), size + frame_tag_size);
    MutableByteSpan body(frame.data() + frame_header_size, frame.size() - frame_header_size);
    ASSERT_EQ(opener.open(header, body), size);
    EXPECT_TRUE(std::equal(message.begin(), message.end(), body.begin())) << size;
  }
  EXPECT_EQ(sealer.frames_sealed(), 8u);
  EXPECT_EQ(opener.frames_opened(), 8u);
}

TEST_P(FrameCipherTest, SealInPlaceMatchesTheWireFormat) {
  FrameSealer sealer(GetParam(), key);
  FrameOpener opener(GetParam(), key, 1 << 20);
  for (std::size_t size : {0, 5, 4096, 300000}) {
    Bytes message(size);
    for (std::size_t i = 0; i < size; ++i) message[i] = static_cast<std::uint8_t>(i * 13 + 1);
    const Bytes original = message;
    std::array<std::uint8_t, frame_header_size> header;
    std::array<std::uint8_t, frame_tag_size> tag;
    sealer.seal_in_place(message, header, tag);
    if (size > 0) {
      EXPECT_NE(message, original) << "encrypted in place";
    }
    Bytes body = message;  // ciphertext ‖ tag, as the receiver reads it
    body.insert(body.end(), tag.begin(), tag.end());
    ASSERT_EQ(opener.body_size(header), body.size());
    ASSERT_EQ(opener.open(header, body), size);
    body.resize(size);
    EXPECT_EQ(body, original);
  }
  // Interleaves with seal(): one counter.
  Bytes frame = sealer.seal(as_bytes("next"));
  std::array<std::uint8_t, frame_header_size> header;
  std::copy_n(frame.begin(), frame_header_size, header.begin());
  EXPECT_EQ(opener.open(header, MutableByteSpan(frame).subspan(frame_header_size)), 4u);
}

namespace {
// Opens one frame produced by seal(); returns the error code.
Errc open_frame(FrameOpener& opener, Bytes frame) {
  return code_of([&] {
    std::array<std::uint8_t, frame_header_size> header;
    std::copy_n(frame.begin(), frame_header_size, header.begin());
    MutableByteSpan body(frame.data() + frame_header_size, frame.size() - frame_header_size);
    opener.open(header, body);
  });
}
}  // namespace

TEST_P(FrameCipherTest, TamperedReplayedAndReorderedFramesFail) {
  FrameSealer sealer(GetParam(), key);
  Bytes f0 = sealer.seal(as_bytes("first"));
  Bytes f1 = sealer.seal(as_bytes("second"));
  {
    FrameOpener opener(GetParam(), key, 1024);
    Bytes bad = f0;
    bad[frame_header_size + 2] ^= 1;  // ciphertext bit
    EXPECT_EQ(open_frame(opener, bad), Errc::bad_message);
    bad = f0;
    bad.back() ^= 1;  // tag bit
    EXPECT_EQ(open_frame(opener, bad), Errc::bad_message);
    EXPECT_EQ(open_frame(opener, f0), Errc::ok);  // the counter did not move on failure
  }
  {
    FrameOpener opener(GetParam(), key, 1024);
    EXPECT_EQ(open_frame(opener, f0), Errc::ok);
    EXPECT_EQ(open_frame(opener, f0), Errc::bad_message) << "replay";
  }
  {
    FrameOpener opener(GetParam(), key, 1024);
    EXPECT_EQ(open_frame(opener, f1), Errc::bad_message) << "reorder";
  }
  {
    SessionKey other = key;
    other[0] ^= 1;
    FrameOpener opener(GetParam(), other, 1024);
    EXPECT_EQ(open_frame(opener, f0), Errc::bad_message) << "wrong key";
  }
}

TEST_P(FrameCipherTest, LengthLimitsAreCheckedBeforeAllocation) {
  FrameOpener opener(GetParam(), key, 1000);
  auto header_for = [](std::uint32_t len) {
    return std::array<std::uint8_t, 4>{
        static_cast<std::uint8_t>(len >> 24), static_cast<std::uint8_t>(len >> 16),
        static_cast<std::uint8_t>(len >> 8), static_cast<std::uint8_t>(len)};
  };
  EXPECT_EQ(opener.body_size(header_for(1000 + 16)), 1016u);
  EXPECT_EQ(code_of([&] { opener.body_size(header_for(1001 + 16)); }), Errc::resource_exhausted);
  EXPECT_EQ(code_of([&] { opener.body_size(header_for(0xffffffffu)); }), Errc::resource_exhausted);
  EXPECT_EQ(code_of([&] { opener.body_size(header_for(15)); }), Errc::bad_message);
  EXPECT_EQ(code_of([&] { opener.body_size(header_for(0)); }), Errc::bad_message);
}

// Whatever library seals AES-256-GCM frames (OpenSSL when built with it,
// libsodium otherwise), the frames are plain AES-256-GCM: peers built either
// way interoperate. Checked against libsodium directly, both directions.
TEST(FrameCipher, AesGcmFramesMatchLibsodium) {
  if (!aes_gcm_available()) GTEST_SKIP() << "AES-256-GCM is not available on this CPU";
  SessionKey key;
  for (std::size_t i = 0; i < key.size(); ++i) key[i] = static_cast<std::uint8_t>(i * 31 + 7);
  FrameSealer sealer(CipherSuite::aes256_gcm, key);
  FrameOpener opener(CipherSuite::aes256_gcm, key, 1 << 20);
  for (std::uint64_t counter = 0; counter < 3; ++counter) {
    Bytes message(1000 + 4099 * counter);
    for (std::size_t i = 0; i < message.size(); ++i)
      message[i] = static_cast<std::uint8_t>(i * 5 + counter);
    std::array<std::uint8_t, crypto_aead_aes256gcm_NPUBBYTES> nonce{};
    nonce[0] = static_cast<std::uint8_t>(counter);
    // Ours → libsodium.
    Bytes frame = sealer.seal(message);
    Bytes plain(message.size());
    unsigned long long plain_len = 0;
    ASSERT_EQ(crypto_aead_aes256gcm_decrypt(plain.data(), &plain_len, nullptr,
                                            frame.data() + frame_header_size,
                                            frame.size() - frame_header_size, frame.data(),
                                            frame_header_size, nonce.data(), key.data()),
              0);
    EXPECT_EQ(plain, message);
    // libsodium → ours.
    Bytes theirs(frame.size());
    std::copy_n(frame.begin(), frame_header_size, theirs.begin());
    unsigned long long cipher_len = 0;
    crypto_aead_aes256gcm_encrypt(theirs.data() + frame_header_size, &cipher_len, message.data(),
                                  message.size(), theirs.data(), frame_header_size, nullptr,
                                  nonce.data(), key.data());
    EXPECT_EQ(theirs, frame);
    std::array<std::uint8_t, frame_header_size> header;
    std::copy_n(theirs.begin(), frame_header_size, header.begin());
    ASSERT_EQ(opener.open(header, MutableByteSpan(theirs).subspan(frame_header_size)),
              message.size());
    EXPECT_TRUE(std::equal(message.begin(), message.end(), theirs.begin() + frame_header_size));
  }
}

INSTANTIATE_TEST_SUITE_P(Suites, FrameCipherTest,
                         ::testing::Values(CipherSuite::xchacha20_poly1305,
                                           CipherSuite::aes256_gcm),
                         [](const auto& info) {
                           return std::string(cipher_name(info.param)) == "aes256-gcm"
                                      ? std::string("Aes256Gcm")
                                      : std::string("XChaCha20Poly1305");
                         });

TEST(FrameCipher, HeaderIsAuthenticated) {
  SessionKey key{};
  FrameSealer sealer(CipherSuite::xchacha20_poly1305, key);
  FrameOpener opener(CipherSuite::xchacha20_poly1305, key, 1 << 20);
  Bytes frame = sealer.seal(Bytes(100, 1));
  // Claim a shorter body (still valid in size): authentication must fail.
  Bytes shorter(frame.begin(), frame.end() - 1);
  shorter[3] = static_cast<std::uint8_t>(shorter[3] - 1);
  EXPECT_EQ(open_frame(opener, shorter), Errc::bad_message);
}
