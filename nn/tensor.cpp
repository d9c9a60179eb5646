#include "nn/tensor.hpp"

#include <sstream>
#include <stdexcept>

namespace apiary::nn {

std::size_t dtype_size(DType dtype) {
  switch (dtype) {
    case DType::f32:
    case DType::i32:
      return 4;
    case DType::f16:
    case DType::bf16:
      return 2;
    case DType::u8:
      return 1;
  }
  throw std::invalid_argument("unknown dtype");
}

std::string to_string(DType dtype) {
  switch (dtype) {
    case DType::f32:
      return "f32";
    case DType::f16:
      return "f16";
    case DType::bf16:
      return "bf16";
    case DType::i32:
      return "i32";
    case DType::u8:
      return "u8";
  }
  return "?";
}

std::string shape_string(const Shape& shape) {
  std::ostringstream out;
  out << '[';
  for (std::size_t i = 0; i < shape.size(); ++i) out << (i ? ", " : "") << shape[i];
  out << ']';
  return out.str();
}

std::size_t element_count(const Shape& shape) {
  std::size_t n = 1;
  for (std::size_t d : shape) n *= d;
  return n;
}

Tensor Tensor::empty(Shape shape, DType dtype, Device device) {
  Tensor t;
  t.shape_ = std::move(shape);
  t.dtype_ = dtype;
  t.device_ = device;
  t.storage_ = std::make_shared<kernels::Buffer>(t.size_bytes(), device);
  t.data_ = t.storage_->data();
  return t;
}

Tensor Tensor::zeros(Shape shape, DType dtype, Device device) {
  Tensor t = empty(std::move(shape), dtype, device);
  t.zero();
  return t;
}

Tensor Tensor::from_vector(const std::vector<float>& values, Shape shape, Device device) {
  if (element_count(shape) != values.size()) {
    throw std::invalid_argument("Tensor::from_vector: " + std::to_string(values.size()) +
                                " values for shape " + shape_string(shape));
  }
  Tensor t = empty(std::move(shape), DType::f32, device);
  kernels::copy_bytes(t.data_, device, values.data(), Device::cpu, t.size_bytes());
  return t;
}

Tensor Tensor::view(void* data, Shape shape, DType dtype, Device device) {
  Tensor t;
  t.data_ = data;
  t.shape_ = std::move(shape);
  t.dtype_ = dtype;
  t.device_ = device;
  return t;
}

std::size_t Tensor::dim(std::size_t i) const {
  if (i >= shape_.size()) {
    throw std::invalid_argument("Tensor::dim(" + std::to_string(i) + ") of shape " +
                                shape_string(shape_));
  }
  return shape_[i];
}

Tensor Tensor::reshape(Shape shape) const {
  if (element_count(shape) != numel()) {
    throw std::invalid_argument("Tensor::reshape " + shape_string(shape_) + " → " +
                                shape_string(shape));
  }
  Tensor t = *this;
  t.shape_ = std::move(shape);
  return t;
}

Tensor Tensor::rows(std::size_t begin, std::size_t end) const {
  if (shape_.empty() || begin > end || end > shape_[0]) {
    throw std::invalid_argument("Tensor::rows [" + std::to_string(begin) + ", " +
                                std::to_string(end) + ") of shape " + shape_string(shape_));
  }
  Tensor t = *this;
  std::size_t row_bytes = shape_[0] == 0 ? 0 : size_bytes() / shape_[0];
  t.data_ = static_cast<std::byte*>(data_) + begin * row_bytes;
  t.shape_[0] = end - begin;
  return t;
}

Tensor Tensor::to(Device device) const {
  Tensor t = empty(shape_, dtype_, device);
  kernels::copy_bytes(t.data_, device, data_, device_, size_bytes());
  return t;
}

std::vector<float> Tensor::to_vector() const {
  check_dtype(DType::f32);
  std::vector<float> out(numel());
  kernels::copy_bytes(out.data(), Device::cpu, data_, device_, size_bytes());
  return out;
}

void Tensor::copy_from(const Tensor& other) {
  if (other.dtype_ != dtype_ || other.numel() != numel()) {
    throw std::invalid_argument("Tensor::copy_from: " + to_string(other.dtype_) +
                                shape_string(other.shape_) + " into " + to_string(dtype_) +
                                shape_string(shape_));
  }
  kernels::copy_bytes(data_, device_, other.data_, other.device_, size_bytes());
}

void Tensor::zero() {
  kernels::zero_bytes(data_, device_, size_bytes());
}

void Tensor::check_dtype(DType expected) const {
  if (expected != dtype_) {
    throw std::invalid_argument("tensor has dtype " + to_string(dtype_) + ", accessed as " +
                                to_string(expected));
  }
}

}  // namespace apiary::nn
