// libFuzzer target: the AEAD frame decoder (net/frame_cipher.hpp).
// The input is read as a byte stream of frames, exactly as a receiver reads a
// socket: header, size check, body, in-place authentication. Only
// apiary::Error may come out. Then a round-trip property: whatever is sealed
// opens to the same bytes.
#include "core/error.hpp"
#include "net/frame_cipher.hpp"

#include <cstdint>
#include <cstdlib>
#include <cstring>

using namespace apiary;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const CipherSuite suite = (data[0] & 1) && aes_gcm_available() ? CipherSuite::aes256_gcm
                                                                 : CipherSuite::xchacha20_poly1305;
  SessionKey key;
  key.fill(0x24);
  ByteSpan stream(data + 1, size - 1);

  FrameOpener opener(suite, key, 4096);
  while (stream.size() >= frame_header_size) {
    std::array<std::uint8_t, frame_header_size> header;
    std::memcpy(header.data(), stream.data(), frame_header_size);
    stream = stream.subspan(frame_header_size);
    std::size_t body_size = 0;
    try {
      body_size = opener.body_size(header);
    } catch (const Error&) {
      break;  // the connection would be closed here
    }
    if (body_size > 4096 + frame_tag_size) std::abort();  // the limit must hold
    if (stream.size() < body_size) break;
    Bytes body(stream.begin(), stream.begin() + static_cast<std::ptrdiff_t>(body_size));
    stream = stream.subspan(body_size);
    try {
      std::size_t n = opener.open(header, body);
      if (n + frame_tag_size != body_size) std::abort();
    } catch (const Error&) {
      break;
    }
  }

  // Round trip of the input itself (capped to the limit).
  ByteSpan message(data, size < 4096 ? size : 4096);
  FrameSealer sealer(suite, key);
  FrameOpener fresh(suite, key, 4096);
  Bytes frame = sealer.seal(message);
  std::array<std::uint8_t, frame_header_size> header;
  std::memcpy(header.data(), frame.data(), frame_header_size);
  MutableByteSpan body(frame.data() + frame_header_size, frame.size() - frame_header_size);
  if (fresh.body_size(header) != body.size()) std::abort();
  std::size_t n = fresh.open(header, body);
  if (n != message.size() || std::memcmp(body.data(), message.data(), n) != 0) std::abort();
  return 0;
}
