// libFuzzer target: the averaging control messages and chunks as a peer
// receives them from strangers: join requests and responses
// (averaging/join_wire.hpp), the all-reduce stream header and chunk headers
// (averaging/stream_wire.hpp), and chunk payloads through the compression
// decoders (averaging/compression.hpp) into a buffer of the size the payload
// encodes. Only Error may come out; what decodes re-encodes with the
// production encoder to a message that decodes to the same values.
#include "averaging/compression.hpp"
#include "averaging/join_wire.hpp"
#include "averaging/stream_wire.hpp"
#include "fuzz_util.hpp"

#include <vector>

using namespace apiary;
using namespace apiary::averaging;

namespace {

bool same_members(const std::vector<GroupMember>& a, const std::vector<GroupMember>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (!(a[i].address == b[i].address) || a[i].weight != b[i].weight ||
        a[i].bandwidth != b[i].bandwidth || a[i].auxiliary != b[i].auxiliary)
      return false;
  }
  return true;
}

void fuzz_join(ByteSpan message) {
  const JoinRequest r = decode_join(message);
  const JoinRequest again = decode_join(encode_join(r));
  fuzz::require(again.group_key == r.group_key && again.schema_hash == r.schema_hash &&
                    again.bandwidth == r.bandwidth && again.client_mode == r.client_mode &&
                    again.auxiliary == r.auxiliary,
                "join request round-trips");
}

void fuzz_response(ByteSpan message) {
  const JoinResponse r = decode_response(message);
  const bool accepted = r.status == JoinStatus::accepted;
  const JoinResponse again =
      decode_response(encode_response(r.status, accepted ? &r.group : nullptr, r.hint));
  fuzz::require(again.status == r.status && again.hint == r.hint, "join response round-trips");
  if (accepted) {
    fuzz::require(again.group.group_id == r.group.group_id &&
                      again.group.schema_hash == r.group.schema_hash &&
                      same_members(again.group.members, r.group.members),
                  "accepted group round-trips");
  }
}

void fuzz_stream_header(ByteSpan message) {
  const StreamHeader h = decode_stream_header(message);
  const StreamHeader again = decode_stream_header(encode_stream_header(h));
  fuzz::require(again.group_id == h.group_id && again.sender == h.sender &&
                    again.reducer == h.reducer && again.schema_hash == h.schema_hash &&
                    again.total_elements == h.total_elements && again.weight == h.weight,
                "stream header round-trips");
}

// A chunk frame: header, then the payload in the header's codec.
void fuzz_chunk(ByteSpan message) {
  const ChunkHeader header = parse_chunk_header(message);
  const ByteSpan payload = message.subspan(kChunkHeaderBytes);
  // The element count whose encoding has exactly the payload's size, if any.
  std::size_t lo = 0, hi = payload.size() * 8 + 1;
  while (lo < hi) {
    const std::size_t mid = lo + (hi - lo) / 2;
    if (encoded_size(header.codec, mid) < payload.size())
      lo = mid + 1;
    else
      hi = mid;
  }
  if (encoded_size(header.codec, lo) != payload.size()) return;
  std::vector<float> values(lo), acc(lo, 1.0f);
  decode(header.codec, payload, values);
  decode_accumulate(header.codec, payload, 0.5f, acc);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  const ByteSpan message(data + 1, size - 1);
  fuzz::expect_only<Error>([&] {
    switch (data[0] % 4) {
      case 0:
        fuzz_join(message);
        break;
      case 1:
        fuzz_response(message);
        break;
      case 2:
        fuzz_stream_header(message);
        break;
      default:
        fuzz_chunk(message);
    }
  });
  return 0;
}
