#pragma once
// Expert RPC messages (msgpack through core/codec.hpp). Methods:
//   "expert.info"     [uid]                                  → [input shape, output shape,
//   max_batch] "expert.forward"  [uid, input tensor, reply codec]       → tensor "expert.backward"
//   [uid, input, grad_output, reply codec] → grad_input tensor
// A tensor is [codec, [dims…], bin]: codec 0 = fp32, 1 = fp16 (IEEE half,
// kernels/convert.hpp), little-endian, row-major, the first dim the batch.
//
// Parsing is strict and cheap: parse_*() read the header and check sizes
// (rank, dims, element counts against the binary's length) without converting
// any data, so the network thread can refuse a bad request at once;
// decode_tensor() converts (on a worker thread) and refuses non-finite values.
// Errors: throws apiary::Error — bad_message for malformed messages,
// invalid_argument for non-finite values.
#include "core/bytes.hpp"
#include "core/codec.hpp"
#include "experts/tensor.hpp"

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace apiary::experts::wire {

inline constexpr std::string_view kInfoMethod = "expert.info";
inline constexpr std::string_view kForwardMethod = "expert.forward";
inline constexpr std::string_view kBackwardMethod = "expert.backward";
inline constexpr std::size_t kMaxElements = std::size_t{1} << 28;

enum class TensorCodec : std::uint8_t { fp32 = 0, fp16 = 1 };

struct TensorView {
  TensorCodec codec = TensorCodec::fp32;
  std::vector<std::size_t> shape;
  ByteSpan data;  // points into the message
};

void write_tensor(codec::Writer& writer, const HostTensor& tensor, TensorCodec codec);
TensorView read_tensor(const codec::Reader& reader, std::string_view field);
HostTensor decode_tensor(const TensorView& view, std::string_view field);

Bytes encode_tensor(const HostTensor& tensor, TensorCodec codec);
HostTensor decode_tensor_message(ByteSpan message);

struct ExpertRequest {
  std::string uid;
  std::vector<TensorView> tensors;  // forward: input; backward: input, grad_output
  TensorCodec reply_codec = TensorCodec::fp32;
};

Bytes encode_forward(std::string_view uid, const HostTensor& input, TensorCodec codec);
Bytes encode_backward(std::string_view uid, const HostTensor& input, const HostTensor& grad_output,
                      TensorCodec codec);
// `tensors` is 1 for forward, 2 for backward. Views point into `message`,
// which must outlive the result (and the returned Document).
ExpertRequest parse_request(const codec::Document& document, std::size_t tensors);

Bytes encode_info_request(std::string_view uid);
std::string parse_info_request(ByteSpan message);
struct ExpertInfoReply {
  ExpertSchema schema;
  std::uint64_t max_batch_size = 0;
};
Bytes encode_info_reply(const ExpertInfoReply& reply);
ExpertInfoReply parse_info_reply(ByteSpan message);

}  // namespace apiary::experts::wire
