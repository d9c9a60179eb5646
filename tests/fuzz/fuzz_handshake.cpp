// libFuzzer target: the handshake message decoder and state machine
// (net/handshake.hpp). The input is fed as each message a peer could send at
// each step: a first hello to a responder, a reply hello to an initiator, an
// auth message after a genuine hello, and a verdict. Only apiary::Error may
// come out, and a handshake fed garbage must never report success.
#include "core/error.hpp"
#include "core/identity.hpp"
#include "net/handshake.hpp"

#include <cstdint>
#include <cstdlib>

using namespace apiary;

namespace {

const Identity& client_identity() {
  static const Identity id = Identity::from_seed(Bytes(32, 1));
  return id;
}
const Identity& server_identity() {
  static const Identity id = Identity::from_seed(Bytes(32, 2));
  return id;
}

ByteSpan body_of(const Bytes& framed) {
  return ByteSpan(framed).subspan(2);
}

template <typename F>
void expect_only_apiary_errors(F&& step) {
  try {
    step();
  } catch (const Error&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  ByteSpan input(data, size);
  if (size > Handshake::max_message_size) return 0;  // the transport never reads more

  expect_only_apiary_errors([&] { decode_hello(input, 1); });
  expect_only_apiary_errors([&] { decode_hello(input, 2); });
  if (size >= 2) {
    std::array<std::uint8_t, 2> prefix{data[0], data[1]};
    expect_only_apiary_errors([&] { (void)Handshake::message_length(prefix); });
  }

  // The state-machine steps cost key generation and signatures, so each runs
  // only for inputs of its message type (others stop at the type byte anyway).
  const std::uint8_t type = size > 0 ? data[0] : 0;
  if (type == 1) {  // as M1 to a responder
    HandshakeConfig config;
    config.admit = [](const PublicKey&, ByteSpan token) { return !token.empty(); };
    Handshake responder(Handshake::Role::responder, server_identity(), config);
    expect_only_apiary_errors([&] { responder.on_message(input); });
    if (responder.done()) std::abort();
  }
  if (type == 2) {  // as M2 to an initiator
    HandshakeConfig config;
    config.expected_peer = server_identity().peer_id();
    Handshake initiator(Handshake::Role::initiator, client_identity(), config);
    (void)initiator.take_outgoing();
    expect_only_apiary_errors([&] { initiator.on_message(input); });
    if (initiator.done()) std::abort();
  }
  if (type == 3 || type == 4) {  // as M3 after a genuine M1, and as M4 after a genuine M2
    Handshake initiator(Handshake::Role::initiator, client_identity(), {});
    Handshake responder(Handshake::Role::responder, server_identity(), {});
    responder.on_message(body_of(*initiator.take_outgoing()));
    Bytes m2 = *responder.take_outgoing();
    expect_only_apiary_errors([&] { responder.on_message(input); });
    if (responder.done()) std::abort();  // forging M3 means forging a signature
    initiator.on_message(body_of(m2));
    expect_only_apiary_errors([&] { initiator.on_message(input); });
    // A verdict is unsigned by design (accept/refuse only); done() is allowed here.
  }
  return 0;
}
