#include "averaging/state_wire.hpp"

#include "core/codec.hpp"
#include "core/error.hpp"

#include <algorithm>
#include <cstring>

namespace apiary::averaging {

std::vector<ChunkRef> chunk_table(std::span<const std::size_t> sizes, std::size_t chunk) {
  std::vector<ChunkRef> table;
  table.reserve(static_cast<std::size_t>(chunk_count(sizes, chunk)));
  for (std::size_t t = 0; t < sizes.size(); ++t)
    for (std::size_t offset = 0; offset < sizes[t]; offset += chunk)
      table.push_back({t, offset, std::min(chunk, sizes[t] - offset)});
  return table;
}

std::uint64_t chunk_count(std::span<const std::size_t> sizes, std::size_t chunk) noexcept {
  if (chunk == 0) return 0;
  std::uint64_t count = 0;
  for (std::size_t size : sizes) count += (size + chunk - 1) / chunk;
  return count;
}

Bytes encode_state_meta(const StateMeta& meta) {
  Bytes hashes;
  hashes.reserve(meta.hashes.size() * sizeof(Hash256));
  for (const Hash256& h : meta.hashes) hashes.insert(hashes.end(), h.begin(), h.end());
  codec::Writer w;
  w.array(6).uint(kStateVersion).uint(meta.epoch).bin(meta.metadata);
  w.array(static_cast<std::uint32_t>(meta.sizes.size()));
  for (std::size_t s : meta.sizes) w.uint(s);
  w.uint(meta.chunk_elements).bin(hashes);
  return w.take();
}

StateMeta decode_state_meta(ByteSpan in) {
  codec::Limits limits;
  limits.max_objects = kMaxStateTensors + 16;  // the size table and a few fields
  const auto doc = codec::parse(in, limits);
  auto fields = doc.root().array("state.meta", 6, 6);
  if (fields.next().uint("state.version") != kStateVersion)
    throw Error(Errc::bad_message, "unknown state version");
  StateMeta meta;
  meta.epoch = fields.next().uint("state.epoch");
  const ByteSpan metadata = fields.next().bin("state.metadata", kMaxStateMetadataBytes);
  meta.metadata.assign(metadata.begin(), metadata.end());
  auto sizes = fields.next().array("state.sizes", 0, kMaxStateTensors);
  std::uint64_t total = 0;
  while (!sizes.done()) {
    const std::uint64_t size = sizes.next().uint("state.size");
    total += size;
    if (size > kMaxStateElements || total > kMaxStateElements)
      throw Error(Errc::bad_message, "state too large");
    meta.sizes.push_back(static_cast<std::size_t>(size));
  }
  const std::uint64_t chunk = fields.next().uint("state.chunk_elements");
  if (chunk == 0 || chunk > kMaxStateChunkElements)
    throw Error(Errc::bad_message, "bad chunk size");
  meta.chunk_elements = static_cast<std::size_t>(chunk);
  // The hashes that arrived bound the chunk count before any table is built
  // (sizes of 2^30 elements in 1-element chunks would be a 24 GiB table).
  const std::uint64_t count = chunk_count(meta.sizes, meta.chunk_elements);
  const ByteSpan hashes = fields.next().bin("state.hashes", kMaxStateHashBytes);
  if (hashes.size() / sizeof(Hash256) != count || hashes.size() % sizeof(Hash256) != 0)
    throw Error(Errc::bad_message, "chunk count does not match the tensor sizes");
  meta.hashes.resize(static_cast<std::size_t>(count));
  for (std::size_t i = 0; i < meta.hashes.size(); ++i)
    std::memcpy(meta.hashes[i].data(), hashes.data() + i * sizeof(Hash256), sizeof(Hash256));
  return meta;
}

}  // namespace apiary::averaging
