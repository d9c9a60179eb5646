#pragma once
// State-sharing wire format: the metadata a donor announces (epoch, the
// trainer's metadata blob, tensor sizes, chunk size, one hash per chunk) and the
// chunk table both sides derive from it. Chunk payloads are raw fp32 bytes
// (see state_sharing.cpp). Metadata on the wire (msgpack, core/codec):
//   [version, epoch, metadata, [tensor sizes…], chunk elements, hashes (32 bytes
//    per chunk, concatenated)].
// Errors: decode_state_meta throws apiary::Error{bad_message}; every size is
// bounded, and the chunk count is checked against the hashes that arrived
// before anything is allocated from the claimed sizes.
#include "core/bytes.hpp"
#include "core/hash.hpp"

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace apiary::averaging {

inline constexpr std::uint64_t kStateVersion = 2;
inline constexpr std::size_t kMaxStateMetadataBytes = 1u << 20;
inline constexpr std::size_t kMaxStateTensors = 1u << 16;
inline constexpr std::uint64_t kMaxStateElements = 1ull << 30;     // 4 GiB of fp32
inline constexpr std::uint64_t kMaxStateChunkElements = 1u << 22;  // 16 MiB chunks at most
// One 32-byte hash per chunk of the largest state in the smallest chunks.
inline constexpr std::size_t kMaxStateHashBytes = 32u << 20;

struct ChunkRef {
  std::size_t tensor;
  std::size_t offset;
  std::size_t count;
};

// Chunks never span tensors; both sides derive the same table.
std::vector<ChunkRef> chunk_table(std::span<const std::size_t> sizes, std::size_t chunk);
// The table's length, computed without building it.
std::uint64_t chunk_count(std::span<const std::size_t> sizes, std::size_t chunk) noexcept;

struct StateMeta {
  std::uint64_t epoch = 0;
  Bytes metadata;
  std::vector<std::size_t> sizes;
  std::size_t chunk_elements = 0;
  std::vector<Hash256> hashes;  // one per chunk_table() entry
  bool same_content(const StateMeta& other) const {
    return epoch == other.epoch && sizes == other.sizes && chunk_elements == other.chunk_elements &&
           hashes == other.hashes && metadata == other.metadata;
  }
};

Bytes encode_state_meta(const StateMeta& meta);
StateMeta decode_state_meta(ByteSpan in);

}  // namespace apiary::averaging
