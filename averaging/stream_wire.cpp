#include "averaging/stream_wire.hpp"

#include "core/codec.hpp"
#include "core/error.hpp"

#include <cmath>
#include <cstring>
#include <limits>

namespace apiary::averaging {
namespace {

constexpr std::uint64_t kStreamVersion = 1;

}  // namespace

Bytes encode_stream_header(const StreamHeader& h) {
  codec::Writer w;
  w.array(7)
      .uint(kStreamVersion)
      .bin(h.group_id)
      .uint(h.sender)
      .uint(h.reducer)
      .uint(h.schema_hash)
      .uint(h.total_elements)
      .f32(h.weight);
  return w.take();
}

StreamHeader decode_stream_header(ByteSpan message) {
  const auto doc = codec::parse(message);
  auto fields = doc.root().array("allreduce.header", 7, 7);
  if (fields.next().uint("allreduce.version") != kStreamVersion)
    throw Error(Errc::bad_message, "unknown all-reduce stream version");
  StreamHeader h;
  const ByteSpan id = fields.next().bin("allreduce.group_id", kMaxGroupIdBytes);
  h.group_id.assign(id.begin(), id.end());
  h.sender = fields.next().integer<std::uint32_t>("allreduce.sender");
  h.reducer = fields.next().integer<std::uint32_t>("allreduce.reducer");
  h.schema_hash = fields.next().uint("allreduce.schema");
  h.total_elements = fields.next().uint("allreduce.total");
  const double weight = fields.next().f64("allreduce.weight");
  if (weight < 0 || weight > std::numeric_limits<float>::max())
    throw Error(Errc::bad_message, "invalid weight");
  h.weight = static_cast<float>(weight);
  return h;
}

void append_chunk_header(Bytes& message, const ChunkHeader& header) {
  std::uint8_t bytes[kChunkHeaderBytes] = {};
  std::memcpy(bytes, &header.index, sizeof(header.index));  // little-endian hosts only
  bytes[4] = static_cast<std::uint8_t>(header.codec);
  message.insert(message.end(), bytes, bytes + kChunkHeaderBytes);
}

ChunkHeader parse_chunk_header(ByteSpan message) {
  if (message.size() < kChunkHeaderBytes) throw Error(Errc::bad_message, "message truncated");
  ChunkHeader header;
  std::memcpy(&header.index, message.data(), sizeof(header.index));
  const auto codec = codec_from_byte(message[4]);
  if (!codec) throw Error(Errc::bad_message, "unknown codec in chunk");
  header.codec = *codec;
  if (message[5] != 0 || message[6] != 0 || message[7] != 0)
    throw Error(Errc::bad_message, "nonzero padding in chunk header");
  return header;
}

}  // namespace apiary::averaging
