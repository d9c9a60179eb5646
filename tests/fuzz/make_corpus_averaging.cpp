// Seed-corpus generator, averaging half: join requests and responses, the
// all-reduce stream header and chunk frames, written by the production
// encoders (averaging/join_wire.hpp, stream_wire.hpp, compression.hpp), and
// state-sharing metadata (averaging/state_wire.hpp).
#include "make_corpus.hpp"

#include "averaging/compression.hpp"
#include "averaging/join_wire.hpp"
#include "averaging/state_wire.hpp"
#include "averaging/stream_wire.hpp"
#include "core/identity.hpp"

#include <vector>

namespace apiary::fuzz {

void write_averaging_seeds(CorpusWriter& out) {
  using namespace averaging;
  const PeerAddress leader{Identity::from_seed(Bytes(32, 3)).peer_id(), "10.0.0.2", 4000};
  const PeerAddress follower{Identity::from_seed(Bytes(32, 4)).peer_id(), "::1", 4001};
  const JoinRequest join{"run.avg.round7", 0x1234, 2.5, false, true};
  out.put("averaging_wire", "join", encode_join(join), {0});
  GroupInfo group{
      Bytes{1, 2, 3, 4}, 0x1234, {{leader, 1.0f, 1.0, false}, {follower, 3.0f, 0.0, true}}};
  out.put("averaging_wire", "accepted", encode_response(JoinStatus::accepted, &group), {1});
  out.put("averaging_wire", "redirect", encode_response(JoinStatus::not_a_leader, nullptr, leader),
          {1});
  out.put("averaging_wire", "full", encode_response(JoinStatus::group_full), {1});
  const StreamHeader header{Bytes{1, 2, 3, 4}, 1, 0, 0x1234, 10000, 2.0f};
  out.put("averaging_wire", "stream_header", encode_stream_header(header), {2});
  const std::vector<float> values{0.5f, -1.0f, 3.0f, 0.0f, 1e-3f, 7.0f};
  for (Codec codec : {Codec::none, Codec::fp16, Codec::bf16, Codec::blockwise8}) {
    Bytes chunk;
    append_chunk_header(chunk, ChunkHeader{3, codec});
    encode_append(codec, values, chunk);
    out.put("averaging_wire", "chunk" + std::to_string(static_cast<int>(codec)), chunk, {3});
  }
  StateMeta meta{7, Bytes{'{', '}'}, {300, 0, 17}, 128, {}};
  meta.hashes.resize(chunk_count(meta.sizes, meta.chunk_elements));
  for (std::size_t i = 0; i < meta.hashes.size(); ++i) meta.hashes[i] = hash256(Bytes(1, i));
  out.put("state_meta", "three_tensors", encode_state_meta(meta));
  out.put("state_meta", "empty", encode_state_meta(StateMeta{0, {}, {}, 1, {}}));
}

}  // namespace apiary::fuzz
