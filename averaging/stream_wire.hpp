#pragma once
// The all-reduce stream on the wire ("averaging.allreduce").
//   sender → reducer  stream header: msgpack (core/codec) [version=1, group id,
//                     sender index, reducer index, schema hash, total elements,
//                     sender weight]
//   reducer → sender  kStreamAccepted (one byte) once the header is accepted
//   both ways         chunk frames: raw binary, an 8-byte header (u32 chunk
//                     index little-endian, u8 codec, 3 zero bytes) and the
//                     payload (compression.hpp). Raw, so payloads are read in
//                     place (the 8 bytes keep fp32/fp16 aligned) and cost no
//                     copy; everything else goes through core/codec.
// Errors: decoders throw apiary::Error{bad_message}.
#include "averaging/compression.hpp"
#include "core/bytes.hpp"

#include <cstddef>
#include <cstdint>

namespace apiary::averaging {

inline constexpr std::size_t kMaxGroupIdBytes = 64;
inline constexpr std::uint8_t kStreamAccepted = 0xA1;
inline constexpr std::size_t kChunkHeaderBytes = 8;

struct StreamHeader {
  Bytes group_id;
  std::uint32_t sender = 0;
  std::uint32_t reducer = 0;
  std::uint64_t schema_hash = 0;
  std::uint64_t total_elements = 0;
  float weight = 1.0f;
};

Bytes encode_stream_header(const StreamHeader& header);
StreamHeader decode_stream_header(ByteSpan message);

struct ChunkHeader {
  std::uint32_t index = 0;
  Codec codec = Codec::none;
};

// Appends a chunk header to `message` (after whatever headroom it holds).
void append_chunk_header(Bytes& message, const ChunkHeader& header);
// Reads the header at the front of `message` (a chunk frame).
ChunkHeader parse_chunk_header(ByteSpan message);

}  // namespace apiary::averaging
