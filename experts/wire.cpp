#include "experts/wire.hpp"

#include "core/error.hpp"
#include "experts/expert_uid.hpp"
#include "kernels/convert.hpp"

#include <cmath>
#include <cstring>

namespace apiary::experts::wire {
namespace {

std::size_t element_size(TensorCodec codec) {
  return codec == TensorCodec::fp16 ? 2 : 4;
}

TensorCodec read_codec(const codec::Reader& reader, std::string_view field) {
  auto value = reader.uint(field, 1);
  return static_cast<TensorCodec>(value);
}

std::vector<std::size_t> read_shape(const codec::Reader& reader, std::string field) {
  auto dims = reader.array(field, 1, kMaxTensorRank);
  std::vector<std::size_t> shape;
  std::size_t elements = 1;
  while (!dims.done()) {
    auto d = static_cast<std::size_t>(dims.next().uint(field, kMaxElements));
    shape.push_back(d);
    elements *= d;
    if (elements > kMaxElements) codec::fail(field, "too many elements");
  }
  return shape;
}

void write_shape(codec::Writer& w, const std::vector<std::size_t>& shape) {
  w.array(static_cast<std::uint32_t>(shape.size()));
  for (auto d : shape) w.uint(d);
}

std::string_view read_uid(const codec::Reader& reader) {
  auto uid = reader.str("uid", kMaxUidLength, 1);
  if (!is_valid_uid(uid)) codec::fail("uid", "not an expert uid");
  return uid;
}

}  // namespace

void write_tensor(codec::Writer& w, const HostTensor& tensor, TensorCodec codec) {
  w.array(3).uint(static_cast<std::uint8_t>(codec));
  write_shape(w, tensor.shape);
  if (codec == TensorCodec::fp16) {
    std::vector<std::uint16_t> half(tensor.values.size());
    kernels::to_fp16(tensor.values, half);
    w.bin({reinterpret_cast<const std::uint8_t*>(half.data()), half.size() * 2});
  } else {
    w.bin({reinterpret_cast<const std::uint8_t*>(tensor.values.data()), tensor.values.size() * 4});
  }
}

TensorView read_tensor(const codec::Reader& reader, std::string_view field) {
  std::string name(field);
  auto parts = reader.array(name, 3, 3);
  TensorView view;
  view.codec = read_codec(parts.next(), name + ".codec");
  view.shape = read_shape(parts.next(), name + ".shape");
  const auto bytes = shape_elements(view.shape) * element_size(view.codec);
  view.data = parts.next().bin(name + ".data", bytes, bytes);
  return view;
}

HostTensor decode_tensor(const TensorView& view, std::string_view field) {
  HostTensor out;
  out.shape = view.shape;
  const auto n = shape_elements(view.shape);
  out.values.resize(n);
  if (n == 0) return out;  // an empty tensor's data() may be null: no memcpy from it
  if (view.codec == TensorCodec::fp16) {
    std::vector<std::uint16_t> half(n);
    std::memcpy(half.data(), view.data.data(), n * 2);
    kernels::from_fp16(half, out.values);
  } else {
    std::memcpy(out.values.data(), view.data.data(), n * 4);
  }
  for (float v : out.values) {
    if (!std::isfinite(v)) {
      throw Error(Errc::invalid_argument, std::string(field) + ": non-finite value");
    }
  }
  return out;
}

Bytes encode_tensor(const HostTensor& tensor, TensorCodec codec) {
  codec::Writer w(tensor.values.size() * element_size(codec) + 64);
  write_tensor(w, tensor, codec);
  return w.take();
}

HostTensor decode_tensor_message(ByteSpan message) {
  auto doc = codec::parse(message);
  return decode_tensor(read_tensor(doc.root(), "tensor"), "tensor");
}

Bytes encode_forward(std::string_view uid, const HostTensor& input, TensorCodec codec) {
  codec::Writer w(input.values.size() * element_size(codec) + 128);
  w.array(3).str(uid);
  write_tensor(w, input, codec);
  w.uint(static_cast<std::uint8_t>(codec));
  return w.take();
}

Bytes encode_backward(std::string_view uid, const HostTensor& input, const HostTensor& grad_output,
                      TensorCodec codec) {
  codec::Writer w((input.values.size() + grad_output.values.size()) * element_size(codec) + 128);
  w.array(4).str(uid);
  write_tensor(w, input, codec);
  write_tensor(w, grad_output, codec);
  w.uint(static_cast<std::uint8_t>(codec));
  return w.take();
}

ExpertRequest parse_request(const codec::Document& document, std::size_t tensors) {
  auto msg = document.root().array("request", tensors + 2, tensors + 2);
  ExpertRequest request;
  request.uid = std::string(read_uid(msg.next()));
  for (std::size_t i = 0; i < tensors; ++i) {
    request.tensors.push_back(read_tensor(msg.next(), i == 0 ? "input" : "grad_output"));
  }
  request.reply_codec = read_codec(msg.next(), "reply_codec");
  return request;
}

Bytes encode_info_request(std::string_view uid) {
  codec::Writer w;
  w.array(1).str(uid);
  return w.take();
}

std::string parse_info_request(ByteSpan message) {
  auto doc = codec::parse(message);
  auto msg = doc.root().array("info", 1, 1);
  return std::string(read_uid(msg.next()));
}

Bytes encode_info_reply(const ExpertInfoReply& reply) {
  codec::Writer w;
  w.array(3);
  write_shape(w, reply.schema.input.sample_shape);
  write_shape(w, reply.schema.output.sample_shape);
  w.uint(reply.max_batch_size);
  return w.take();
}

ExpertInfoReply parse_info_reply(ByteSpan message) {
  auto doc = codec::parse(message);
  auto msg = doc.root().array("info_reply", 3, 3);
  ExpertInfoReply reply;
  reply.schema.input.sample_shape = read_shape(msg.next(), "input_shape");
  reply.schema.output.sample_shape = read_shape(msg.next(), "output_shape");
  reply.max_batch_size = msg.next().uint("max_batch_size");
  return reply;
}

}  // namespace apiary::experts::wire
