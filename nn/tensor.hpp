#pragma once
// Tensor: shape, dtype and device over a contiguous buffer, either owning (the
// storage is shared by views made from it) or a non-owning view of memory that
// someone else keeps alive (e.g. a slice of ParameterRegistry's flat buffer).
//
// Error convention for nn/: functions throw std::invalid_argument for bad
// arguments (shapes, dtypes, sizes), std::runtime_error for I/O and device
// failures (nn::DatasetError for unreadable or corrupt data files).
#include "kernels/device.hpp"
#include "kernels/memory.hpp"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

namespace apiary::nn {

using kernels::Device;
using Shape = std::vector<std::size_t>;

enum class DType { f32, f16, bf16, i32, u8 };

std::size_t dtype_size(DType dtype);
std::string to_string(DType dtype);
std::string shape_string(const Shape& shape);
std::size_t element_count(const Shape& shape);

template <typename T>
constexpr DType dtype_of();
template <>
constexpr DType dtype_of<float>() {
  return DType::f32;
}
template <>
constexpr DType dtype_of<std::int32_t>() {
  return DType::i32;
}
template <>
constexpr DType dtype_of<std::uint8_t>() {
  return DType::u8;
}

class Tensor {
 public:
  Tensor() = default;
  // Owning, uninitialised / zero-filled storage.
  static Tensor empty(Shape shape, DType dtype = DType::f32, Device device = Device::cpu);
  static Tensor zeros(Shape shape, DType dtype = DType::f32, Device device = Device::cpu);
  // Owning copy of host floats.
  static Tensor from_vector(const std::vector<float>& values, Shape shape,
                            Device device = Device::cpu);
  // Non-owning view; `data` must outlive the tensor and live on `device`.
  static Tensor view(void* data, Shape shape, DType dtype, Device device);

  const Shape& shape() const noexcept { return shape_; }
  std::size_t dim(std::size_t i) const;
  std::size_t numel() const noexcept { return element_count(shape_); }
  std::size_t size_bytes() const noexcept { return numel() * dtype_size(dtype_); }
  DType dtype() const noexcept { return dtype_; }
  Device device() const noexcept { return device_; }
  bool defined() const noexcept { return data_ != nullptr || numel() == 0; }
  bool owns_storage() const noexcept { return storage_ != nullptr; }

  void* raw() noexcept { return data_; }
  const void* raw() const noexcept { return data_; }
  // Typed access; throws std::invalid_argument when T does not match dtype().
  template <typename T>
  std::span<T> span() {
    check_dtype(dtype_of<std::remove_const_t<T>>());
    return {static_cast<T*>(data_), numel()};
  }
  template <typename T>
  std::span<const T> span() const {
    check_dtype(dtype_of<std::remove_const_t<T>>());
    return {static_cast<const T*>(data_), numel()};
  }

  // Same storage, new shape (element counts must match).
  Tensor reshape(Shape shape) const;
  // Rows [begin, end) along the first dimension, sharing storage.
  Tensor rows(std::size_t begin, std::size_t end) const;
  // Deep copy onto `device`.
  Tensor to(Device device) const;
  // Host copy of an f32 tensor.
  std::vector<float> to_vector() const;
  // Copies another tensor's contents (same dtype and element count) into this one.
  void copy_from(const Tensor& other);
  void zero();

 private:
  void check_dtype(DType expected) const;
  std::shared_ptr<kernels::Buffer> storage_;  // null for non-owning views
  void* data_ = nullptr;
  Shape shape_;
  DType dtype_ = DType::f32;
  Device device_ = Device::cpu;
};

}  // namespace apiary::nn
