// libFuzzer target: the state-sharing metadata a joiner receives from a donor
// (averaging/state_wire.hpp), then what download_state does with it: the chunk
// table built from the claimed sizes. Only Error may come out; the table must
// have one entry per hash and cover exactly the claimed elements (so nothing
// is allocated beyond what the hashes that arrived vouch for); what decodes
// re-encodes to the same metadata.
#include "averaging/state_wire.hpp"
#include "fuzz_util.hpp"

using namespace apiary;
using namespace apiary::averaging;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const ByteSpan message(data, size);
  StateMeta meta;
  if (!fuzz::expect_only<Error>([&] { meta = decode_state_meta(message); })) return 0;
  const auto table = chunk_table(meta.sizes, meta.chunk_elements);
  fuzz::require(table.size() == meta.hashes.size(), "one hash per chunk");
  std::uint64_t covered = 0, claimed = 0;
  for (const auto& c : table) {
    fuzz::require(c.count > 0 && c.count <= meta.chunk_elements, "chunk within its size");
    covered += c.count;
  }
  for (std::size_t s : meta.sizes) claimed += s;
  fuzz::require(covered == claimed, "chunks cover the tensors");
  fuzz::require(decode_state_meta(encode_state_meta(meta)).same_content(meta),
                "state metadata round-trips");
  return 0;
}
