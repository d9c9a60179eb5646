#include "experts/tensor.hpp"

#include "core/error.hpp"

#include <algorithm>
#include <random>

namespace apiary::experts {

HostTensor::HostTensor(std::vector<std::size_t> shape_, std::vector<float> values_)
    : shape(std::move(shape_)), values(std::move(values_)) {
  if (values.size() != shape_elements(shape)) {
    throw Error(Errc::invalid_argument, "tensor of shape " + shape_to_string(shape) + " needs " +
                                            std::to_string(shape_elements(shape)) +
                                            " values, got " + std::to_string(values.size()));
  }
}

HostTensor HostTensor::zeros(std::vector<std::size_t> shape_) {
  auto n = shape_elements(shape_);
  return HostTensor(std::move(shape_), std::vector<float>(n, 0.0f));
}

HostTensor HostTensor::normal(std::vector<std::size_t> shape_, std::uint64_t seed, float stddev) {
  auto t = zeros(std::move(shape_));
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> dist(0.0f, stddev);
  for (auto& v : t.values) v = dist(rng);
  return t;
}

std::size_t HostTensor::row_size() const noexcept {
  if (shape.empty()) return 0;
  return shape_elements(std::span<const std::size_t>(shape).subspan(1));
}

std::string shape_to_string(std::span<const std::size_t> shape) {
  std::string out = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (i) out += ", ";
    out += std::to_string(shape[i]);
  }
  return out + "]";
}

std::size_t shape_elements(std::span<const std::size_t> shape) {
  std::size_t n = 1;
  for (auto d : shape) n *= d;
  return n;
}

std::string TensorSchema::to_string() const {
  std::string out = "[*";
  for (auto d : sample_shape) out += ", " + std::to_string(d);
  return out + "] float32";
}

void TensorSchema::check_shape(std::span<const std::size_t> shape, std::string_view what) const {
  bool ok = shape.size() == sample_shape.size() + 1 &&
            std::equal(sample_shape.begin(), sample_shape.end(), shape.begin() + 1);
  if (!ok) {
    throw Error(Errc::invalid_argument, std::string(what) + ": expected shape " + to_string() +
                                            ", got " + shape_to_string(shape) + " float32");
  }
}

void TensorSchema::check(const HostTensor& tensor, std::string_view what) const {
  check_shape(tensor.shape, what);
  if (tensor.values.size() != shape_elements(tensor.shape)) {
    throw Error(Errc::invalid_argument, std::string(what) + ": shape " +
                                            shape_to_string(tensor.shape) + " needs " +
                                            std::to_string(shape_elements(tensor.shape)) +
                                            " values, got " + std::to_string(tensor.values.size()));
  }
}

HostTensor concat_rows(std::span<const HostTensor* const> parts) {
  if (parts.empty()) throw Error(Errc::invalid_argument, "concat_rows: no tensors");
  HostTensor out;
  out.shape = parts.front()->shape;
  std::size_t rows = 0;
  for (auto* part : parts) {
    if (part->shape.size() != out.shape.size() ||
        !std::equal(part->shape.begin() + 1, part->shape.end(), out.shape.begin() + 1)) {
      throw Error(Errc::invalid_argument, "concat_rows: shape " + shape_to_string(part->shape) +
                                              " differs from " + shape_to_string(out.shape));
    }
    rows += part->rows();
  }
  out.shape[0] = rows;
  out.values.reserve(shape_elements(out.shape));
  for (auto* part : parts)
    out.values.insert(out.values.end(), part->values.begin(), part->values.end());
  return out;
}

HostTensor slice_rows(const HostTensor& tensor, std::size_t begin, std::size_t count) {
  if (begin + count > tensor.rows()) {
    throw Error(Errc::invalid_argument, "slice_rows: rows [" + std::to_string(begin) + ", " +
                                            std::to_string(begin + count) + ") of " +
                                            std::to_string(tensor.rows()));
  }
  HostTensor out;
  out.shape = tensor.shape;
  out.shape[0] = count;
  auto width = tensor.row_size();
  out.values.assign(tensor.values.begin() + begin * width,
                    tensor.values.begin() + (begin + count) * width);
  return out;
}

}  // namespace apiary::experts
