// Seed-corpus generator, message half: writes tests/fuzz/corpus/<target>/
// from the production encoders. Run from the repository root:
//   build/tests/fuzz/fuzz_make_corpus tests/fuzz/corpus
#include "make_corpus.hpp"

#include "core/codec.hpp"
#include "core/identity.hpp"
#include "dht/validator.hpp"
#include "dht/wire.hpp"
#include "experts/wire.hpp"
#include "net/address.hpp"
#include "net/frame_cipher.hpp"
#include "net/handshake.hpp"
#include "net/rpc_frame.hpp"

#include <cstdio>
#include <fstream>

namespace apiary::fuzz {

void CorpusWriter::put(std::string_view target, std::string_view name, ByteSpan bytes,
                       Bytes prefix) {
  const auto dir = root_ / target;
  std::filesystem::create_directories(dir);
  std::ofstream file(dir / name, std::ios::binary | std::ios::trunc);
  prefix.insert(prefix.end(), bytes.begin(), bytes.end());
  file.write(reinterpret_cast<const char*>(prefix.data()),
             static_cast<std::streamsize>(prefix.size()));
}

void CorpusWriter::put_text(std::string_view target, std::string_view name, std::string_view text) {
  put(target, name, ByteSpan(reinterpret_cast<const std::uint8_t*>(text.data()), text.size()));
}

namespace {

ByteSpan text_bytes(std::string_view s) {
  return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

void frame_seeds(CorpusWriter& out) {
  SessionKey key;
  key.fill(0x24);  // fuzz_frame.cpp's key
  for (int suite = 0; suite < 2; ++suite) {
    const CipherSuite cs = suite ? CipherSuite::aes256_gcm : CipherSuite::xchacha20_poly1305;
    if (suite && !aes_gcm_available()) continue;
    FrameSealer sealer(cs, key);
    Bytes stream;
    for (std::string_view msg : {"hello", "", "a longer message body of some bytes"}) {
      const Bytes frame = sealer.seal(text_bytes(msg));
      stream.insert(stream.end(), frame.begin(), frame.end());
    }
    out.put("frame", suite ? "aes_stream" : "xchacha_stream", stream,
            {static_cast<std::uint8_t>(suite)});
  }
}

void handshake_seeds(CorpusWriter& out) {
  const Identity client = Identity::from_seed(Bytes(32, 1));  // fuzz_handshake.cpp's identities
  const Identity server = Identity::from_seed(Bytes(32, 2));
  HandshakeConfig client_config;
  client_config.token = Bytes{1, 2, 3};
  Handshake initiator(Handshake::Role::initiator, client, client_config);
  Handshake responder(Handshake::Role::responder, server, {});
  int step = 1;
  for (Handshake* from : {&initiator, &responder, &initiator, &responder}) {
    Handshake* to = from == &initiator ? &responder : &initiator;
    auto framed = from->take_outgoing();
    if (!framed) break;
    const ByteSpan body = ByteSpan(*framed).subspan(2);
    out.put("handshake", "m" + std::to_string(step++), body);
    try {
      to->on_message(body);
    } catch (const Error&) {
      break;
    }
  }
}

void rpc_seeds(CorpusWriter& out) {
  using namespace rpc::detail;
  const Bytes payload{0x93, 1, 2, 3};
  out.put("rpc_frame", "request", encode_request(1, "dht.find", payload));
  out.put("rpc_frame", "response", encode_response(2, payload));
  out.put("rpc_frame", "error", encode_error(3, Errc::not_found, "no such key"));
  out.put("rpc_frame", "cancel", encode_cancel(5));
  out.put("rpc_frame", "stream_open", encode_stream_open(7, "avg.allreduce"));
  out.put("rpc_frame", "stream_data", encode_stream_data(7, payload));
  out.put("rpc_frame", "stream_credit", encode_stream_credit(7, 1 << 20));
  out.put("rpc_frame", "stream_close", encode_stream_close(7));
  out.put("rpc_frame", "stream_reset", encode_stream_reset(7, Errc::cancelled, "bye"));
  for (const auto& file : std::filesystem::directory_iterator(out.root() / "rpc_frame")) {
    std::ifstream in(file.path(), std::ios::binary);
    Bytes bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    out.put("codec", "rpc_" + file.path().filename().string(), bytes);
  }
  codec::Writer w;
  w.map(3).str("k").f64(1.5).str("neg").sint(-70000).str("nested").array(3).nil().boolean(true);
  w.map(1).str("bin").bin(payload);
  out.put("codec", "map", w.take());
  out.put("codec_roundtrip", "nested",
          Bytes{7, 3, 2, 5, 'x', 8, 2,    1, 'k',  1,    1,    3,    0,    0,   0,
                0, 0, 0, 0, 42,  4, 0x40, 9, 0x21, 0xfb, 0x54, 0x44, 0x2d, 0x18});
}

void dht_seeds(CorpusWriter& out) {
  using namespace dht;
  const Identity owner = Identity::from_seed(Bytes(32, 7));  // fuzz_dht_validator.cpp's owner
  const PeerAddress peer{owner.peer_id(), "10.0.0.1", 31337};
  out.put("address", "ipv4", text_bytes(peer.to_string()));
  out.put("address", "ipv6", text_bytes(PeerAddress{owner.peer_id(), "::1", 80}.to_string()));
  out.put("address", "name",
          text_bytes(PeerAddress{owner.peer_id(), "node-1.example", 1}.to_string()));

  const std::string marker = OwnerSignatureValidator::owner_marker(owner.public_key());
  Record record{Bytes{'r', 'u', 'n'}, Bytes(marker.begin(), marker.end()), Bytes{'v', '1'}, 2.0e9};
  OwnerSignatureValidator(owner).sign(record);
  Bytes joined = record.key;
  joined.push_back(0xff);
  joined.insert(joined.end(), record.subkey->begin(), record.subkey->end());
  joined.push_back(0xff);
  joined.insert(joined.end(), record.value.begin(), record.value.end());
  out.put("dht_validator", "signed_subkey", joined);
  out.put("dht_validator", "plain", Bytes{'k', 0xff, 's', 0xff, 'v'});

  const std::vector<wire::StoreItem> items{{record.key, record.subkey, record.value, 2.0e9, false},
                                           {Bytes{'k'}, std::nullopt, Bytes{'v'}, 1.5e9, true}};
  const NodeId id = NodeId::of_key(record.key);
  StoredValue dictionary{true, {}, {{Bytes{'s'}, {Bytes{'v'}, 2.0e9}}}};
  StoredValue regular{false, {Bytes{'v', 'v'}, 1.9e9}, {}};
  const std::vector<wire::FindResult> results{
      {dictionary, {peer}}, {regular, {}}, {std::nullopt, {peer, peer}}};
  const std::vector<StoreStatus> statuses{StoreStatus::stored, StoreStatus::outdated};
  out.put("dht_wire", "ping_request", wire::encode_ping_request(), {0, 0});
  out.put("dht_wire", "ping_response", wire::encode_ping_response(1.7e9), {1, 0});
  out.put("dht_wire", "store_request", wire::encode_store_request(items), {2, 0});
  out.put("dht_wire", "store_response", wire::encode_store_response(statuses), {3, 2});
  out.put("dht_wire", "find_request", wire::encode_find_request(std::vector<NodeId>{id, id}),
          {4, 0});
  out.put("dht_wire", "find_response", wire::encode_find_response(results), {5, 3});
}

void expert_seeds(CorpusWriter& out) {
  using namespace experts;
  const HostTensor input({2, 3}, {1, 2, 3, 4, 5, 6});
  const HostTensor grad({2, 3}, {0.5f, -1, 0, 2, 3, -4});
  wire::ExpertInfoReply reply;
  reply.schema.input.sample_shape = {3};
  reply.schema.output.sample_shape = {3};
  reply.max_batch_size = 128;
  out.put("experts_wire", "info_request", wire::encode_info_request("ffn.0.1"), {0});
  out.put("experts_wire", "info_reply", wire::encode_info_reply(reply), {1});
  out.put("experts_wire", "forward",
          wire::encode_forward("ffn.0.1", input, wire::TensorCodec::fp32), {2});
  out.put("experts_wire", "forward_fp16",
          wire::encode_forward("ffn.0.1", input, wire::TensorCodec::fp16), {2});
  out.put("experts_wire", "backward",
          wire::encode_backward("ffn.0.1", input, grad, wire::TensorCodec::fp32), {3});
  out.put("experts_wire", "tensor", wire::encode_tensor(grad, wire::TensorCodec::fp32), {4});
}

}  // namespace

void write_message_seeds(CorpusWriter& out) {
  frame_seeds(out);
  handshake_seeds(out);
  rpc_seeds(out);
  dht_seeds(out);
  expert_seeds(out);
}

}  // namespace apiary::fuzz

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s OUT_DIR (tests/fuzz/corpus)\n", argv[0]);
    return 2;
  }
  apiary::fuzz::CorpusWriter out(argv[1]);
  apiary::fuzz::write_message_seeds(out);
  apiary::fuzz::write_file_seeds(out);
  apiary::fuzz::write_averaging_seeds(out);
  return 0;
}
